import pytest
import torch

from model import build_model
from training.teacher_memo import MemoTeacher, sample_key


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return build_model("student").eval()  # any region model stands in for the teacher


def test_memo_gives_the_teachers_outputs_and_runs_it_once_per_distinct_sample(teacher):
    memo = MemoTeacher(teacher)
    x = torch.randn(4, 3, 64, 96)
    flipped = torch.flip(x, dims=[3])
    with torch.inference_mode():
        direct = teacher(torch.cat([x, flipped]))
    calls = []
    hook = teacher.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    first = memo(x)
    again = memo(torch.cat([flipped[:2], x[2:], flipped[2:]]))  # two seen, four new, in another order
    for got, want in zip(first, direct):
        torch.testing.assert_close(got, want[:4], rtol=0, atol=1e-5)
    torch.testing.assert_close(again.logits[:2], direct.logits[4:6], rtol=0, atol=1e-5)
    torch.testing.assert_close(again.logits[2:4], direct.logits[2:4], rtol=0, atol=1e-5)
    torch.testing.assert_close(again.features[4:], direct.features[6:], rtol=0, atol=1e-5)
    assert calls == [4, 4] and (memo.hits, memo.misses) == (2, 8)  # the second batch ran only its 4 new ones
    memo(x.to(memory_format=torch.channels_last))  # same values, other layout: all hits, no teacher call
    hook.remove()
    assert calls == [4, 4] and memo.hits == 6
    assert type(first).__name__ == "RegionOutput" and not first.logits.requires_grad


def test_memo_keeps_the_teacher_frozen_and_bounds_its_memory(teacher):
    memo = MemoTeacher(teacher, max_entries=3).train()
    assert not memo.teacher.training  # batch statistics would make an output depend on its batch
    x = torch.randn(4, 3, 64, 64)
    memo(x)
    assert len(memo.memo) == 0  # four would pass the bound: not stored, still answered
    memo(x[:2])
    assert len(memo.memo) == 2 and sample_key(x[0]) in memo.memo and sample_key(x[0]) != sample_key(x[1])
