import json
from pathlib import Path
from PIL import Image, ImageDraw
from training.collections.sheets import fit
srcs={"utkface":"/work/pool-people4","flickr8k":"/work/pool-people4","grocery-produce":"/work/pool-people4","human-seg":"/work/pool-people4",
      "weather":"/work/pool-new","face-masks":"/work/pool-new","clothing":"/work/pool-new","sr-benchmarks":"/work/pool-new","sr-benchmarks-set14":"/work/pool-new","sr-benchmarks-swinir":"/work/pool-new"}
texts={}
for name in srcs:
    for line in open(f"training/collections/labels/{name}.jsonl"):
        d=json.loads(line); texts[(name,d["path"])]=d.get("texts",[])
recs=[]
for root in sorted(set(srcs.values())):
    for line in open(root+"/labels.jsonl"):
        r=json.loads(line)
        if r["label"]==1 and r["source"] in srcs: recs.append((r["source"],r["path"],root,r["boxes"]))
recs.sort()
T=240; C=5; R=5; per=C*R
lines=[]
for s in range(0,len(recs),per):
    chunk=recs[s:s+per]; rows=-(-len(chunk)//C)
    sheet=Image.new("RGB",(C*T,rows*(T+24)),"white"); dr=ImageDraw.Draw(sheet)
    for i,(src,path,root,boxes) in enumerate(chunk):
        im=Image.open(root+"/"+path).convert("RGB"); d=ImageDraw.Draw(im)
        w=max(1,round(max(im.size)/150))
        for b in boxes: d.polygon([(b[k],b[k+1]) for k in range(0,len(b),2)], outline=(255,0,0), width=w)
        im=fit(im,T-4,T-16); x=(i%C)*T; y=(i//C)*(T+24)
        sheet.paste(im,(x+2,y+14)); num=s+i
        dr.text((x+2,y+1),f"{num} {src}",fill=(255,0,0))
        # texts read: from the committed labels (source path differs from pool path: match by suffix)
        tx=[t for (n,p),t in texts.items() if n==src and path.endswith(p)]
        dr.text((x+2,y+T-2)," | ".join(tx[0])[:40] if tx else "?",fill=(0,0,255))
        lines.append(f"{num}\t{src}\t{path}")
    sheet.save(f"/tmp/audit/sheet_{s//per:02d}.png")
Path("/tmp/audit/index.txt").write_text("\n".join(lines)+"\n")
print(len(recs))
