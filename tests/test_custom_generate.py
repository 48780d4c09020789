"""Our methods through transformers' own `model.generate(custom_generate=<folder>, trust_remote_code=True)`.

The folders are exported by scripts/export_custom_generate.py; through them, the architecture matrix's T5, BART and
Llama families (a padded batch of 3 and a single prompt, an EOS that stops rows at different lengths) return exactly
the tensor `model.generate(do_sample=False)` returns — decoder start or prompt, new tokens, pad after EOS — and its
output class with return_dict_in_generate=True; what only transformers' loop can honour is refused by name.
"""
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import archs
from stairs_decoding.custom_generate import exported
from stairs_decoding.errors import GenerationInputError
from test_architectures import _batch, _mid_eos

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = tmp_path_factory.mktemp("custom_generate")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_custom_generate.py"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    made = {Path(line).name: line for line in proc.stdout.split()}
    assert sorted(made) == sorted(exported()) and len(made) == 4
    for folder in made.values():
        for name in ("README.md", "custom_generate/generate.py", "custom_generate/requirements.txt"):
            assert (Path(folder) / name).is_file(), name
    return made


@pytest.mark.parametrize("name", ["t5", "bart", "llama"])
def test_every_exported_method_returns_what_model_generate_returns(name, folders):
    target = archs.build(name)
    draft = archs.perturbed(target)
    ids, mask = _batch(name)
    eos = _mid_eos(name, target, ids, mask)
    single = ids[1:2, mask[1].bool()]
    common = dict(eos_token_id=eos, pad_token_id=archs.PAD)
    for n in (5, 30):
        ref = target.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=n, **common)
        ref1 = target.generate(single, do_sample=False, num_beams=1, max_new_tokens=n, **common)
        assert n == 5 or len({int((row == archs.PAD).sum()) for row in ref}) > 1      # rows end at different lengths
        for method, folder in folders.items():
            extra = {} if method == "lookup" else {"assistant_model": draft}
            for k in (1, 4):
                got = target.generate(ids, attention_mask=mask, custom_generate=folder, trust_remote_code=True,
                                      num_assistant_tokens=k, max_new_tokens=n, **extra, **common)
                assert torch.equal(got, ref), (method, k, n, got.tolist(), ref.tolist())
                got1 = target.generate(input_ids=single, custom_generate=folder, trust_remote_code=True,
                                       num_assistant_tokens=k, max_new_tokens=n, **extra, **common)
                assert torch.equal(got1, ref1), (method, k, n)
    out = target.generate(ids, attention_mask=mask, custom_generate=folders["stairs_cached"], trust_remote_code=True,
                          assistant_model=draft, max_new_tokens=30, return_dict_in_generate=True, **common)
    want = target.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=30, return_dict_in_generate=True,
                           **common)
    assert type(out) is type(want) and torch.equal(out.sequences, want.sequences)


def test_lengths_and_masks_come_as_model_generate_takes_them(folders):
    """max_length (counted with the prompt), the generation config's max_length (20) and a mask inferred from the
    pad id, as model.generate derives them."""
    target = archs.build("llama")
    draft = archs.perturbed(target)
    ids, mask = _batch("llama")
    kw = dict(custom_generate=folders["stairs_cached"], trust_remote_code=True, assistant_model=draft,
              pad_token_id=archs.PAD, eos_token_id=archs.VOCAB + 7)
    for extra in ({"max_length": ids.shape[1] + 9}, {}):
        with warnings.catch_warnings():          # transformers' own note that its default length applies
            warnings.filterwarnings("ignore", message="Using the model-agnostic default", category=UserWarning)
            want = target.generate(ids, attention_mask=mask, do_sample=False, pad_token_id=archs.PAD,
                                   eos_token_id=archs.VOCAB + 7, **extra)
        assert torch.equal(target.generate(ids, attention_mask=mask, **kw, **extra), want)
        assert torch.equal(target.generate(ids, **kw, **extra), want)            # mask inferred from the pad id


def test_what_only_transformers_loop_honours_is_refused_by_name(folders):
    target = archs.build("t5")
    draft = archs.perturbed(target)
    ids, mask = _batch("t5")
    kw = dict(attention_mask=mask, custom_generate=folders["stairs_cached"], trust_remote_code=True,
              max_new_tokens=5)
    cases = [({"assistant_model": draft, "output_scores": True}, "output_scores"),
             ({"assistant_model": draft, "stopping_criteria": [lambda *a, **k: False]}, "stopping_criteria"),
             ({"assistant_model": draft, "use_cache": False}, "use_cache"),
             ({}, "assistant_model"),
             ({"assistant_model": draft, "num_beams": 2}, "num_beams")]
    for extra, word in cases:
        with pytest.raises(GenerationInputError, match=word):
            target.generate(ids, **kw, **extra)
    with pytest.raises(GenerationInputError, match="assistant_model"):
        target.generate(ids, **{**kw, "custom_generate": folders["lookup"]}, assistant_model=draft)


def test_configs_and_masks_are_taken_as_model_generate_takes_them(folders):
    """A generation_config passed in (merged over the model's, as transformers merges it), max_new_tokens from a
    config beating a call's max_length, an encoder-decoder batch without a mask (transformers infers none there),
    a checkpoint config asking for beams (refused by name, never silently greedy), right padding refused."""
    from transformers import GenerationConfig

    for name in ("t5", "llama"):
        target = archs.build(name)
        draft = archs.perturbed(target)
        ids, mask = _batch(name)
        kw = dict(custom_generate=folders["stairs_cached"], trust_remote_code=True, assistant_model=draft)
        config = GenerationConfig(max_new_tokens=8, pad_token_id=archs.PAD, do_sample=False)
        want = target.generate(ids, attention_mask=mask, generation_config=config)
        assert torch.equal(target.generate(ids, attention_mask=mask, generation_config=config, **kw), want)
        target.generation_config.max_new_tokens = 6
        want = target.generate(ids, attention_mask=mask, max_length=40, pad_token_id=archs.PAD, do_sample=False)
        assert want.shape[1] == (1 if name == "t5" else ids.shape[1]) + 6
        assert torch.equal(target.generate(ids, attention_mask=mask, max_length=40, pad_token_id=archs.PAD, **kw),
                           want)
        target.generation_config.max_new_tokens = None
        if name == "t5":                       # padded encoder input, no mask: the encoder sees the pads
            want = target.generate(ids, max_new_tokens=12, pad_token_id=archs.PAD, do_sample=False)
            assert torch.equal(target.generate(ids, max_new_tokens=12, pad_token_id=archs.PAD, **kw), want)
        else:
            right = torch.stack([torch.roll(r, -int((m == 0).sum())) for r, m in zip(ids, mask)])
            with pytest.raises(GenerationInputError, match="left-padded"):
                target.generate(right, attention_mask=torch.stack([torch.roll(m, -int((m == 0).sum())) for m in mask]),
                                max_new_tokens=5, **kw)
        target.generation_config.num_beams = 4
        with pytest.raises(GenerationInputError, match="num_beams=4"):
            target.generate(ids, attention_mask=mask, max_new_tokens=5, **kw)
        target.generation_config.num_beams = 1
        with pytest.raises(GenerationInputError, match="decoder_input_ids"):
            target.generate(ids, attention_mask=mask, max_new_tokens=5, decoder_input_ids=ids[:, :1], **kw)
