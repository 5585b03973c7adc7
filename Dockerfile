# Dataflow worker image (custom container, --sdk_container_image): Beam's Python SDK image
# with textfilter's base install and the shipped student weights, nothing else: no torch.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/textfilter-worker:0.1.0 .
#   docker build --build-arg EXTRAS=ocr -t ...:0.1.0-ocr .      # with --ocr rapidocr
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/textfilter-worker:0.1.0
#
# The job then runs with --sdk_container_image=<that image> --sdk_location=container and
# without --setup_file (README: Runners). Beam's version must be the one the job is launched
# with; requirements/base.txt pins it, so pip keeps the image's apache-beam as it is.
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

# Extras to add to the base install, comma-separated: "ocr", "torch" (a CUDA-sized download).
ARG EXTRAS=""

COPY setup.py MANIFEST.in requirements.txt /tmp/textfilter/
COPY requirements/ /tmp/textfilter/requirements/
COPY model/ /tmp/textfilter/model/
COPY pipeline/ /tmp/textfilter/pipeline/
COPY training/ /tmp/textfilter/training/
RUN pip install --no-cache-dir "/tmp/textfilter${EXTRAS:+[$EXTRAS]}" \
 && rm -rf /tmp/textfilter \
 && python -c "import pipeline.run, onnxruntime; from pipeline.handler import default_model_path as p; open(p('onnx')).close()"

# The SDK image's entry point (/opt/apache/beam/boot) starts the worker: keep it.
