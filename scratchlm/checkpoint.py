"""Checkpoints: a model, its optimiser and its config in one .npz file (Chapter 3; used by every
training run from Chapter 4 on).

Layout of the archive (np.savez, uncompressed, no pickles):

    model/<parameter name>    the model's state_dict, e.g. model/blocks.0.attn.c_attn.weight
    optim/<index>.<field>     the optimiser's state arrays, e.g. optim/0.exp_avg
    meta                      0-d unicode array holding JSON:
                              {"format", "step", "model_config", "config", "extra",
                               "optimizer": {"type", "param_groups"}}

One rule for configs: "model_config" is the model's own `.config` (a dataclass, e.g. GPTConfig),
written by every save and compared field by field with the model's on every load, so a model built
differently is refused by name even where the shapes agree (n_head 2 vs 4 splits the same weights
into other heads); None for a model without one. "config" is whatever else the caller wants checked
on load, e.g. a training run's settings (scratchlm.train saves its TrainConfig there).

Writing is atomic (a temporary file in the same folder, then os.replace), so a crash mid-write
leaves the previous checkpoint intact, and a write refuses weights or optimiser state holding NaN
or infinity (naming the array), so a diverged run can never replace a good checkpoint. Reading
uses np.load(allow_pickle=False): an archive holding pickled objects is refused, since unpickling
runs code. Loading checks, before changing anything it can, that the configs equal the model's and
the one given (naming each differing field) and that every parameter name and shape matches
(naming the parameter). Restoring model and optimiser state this way makes a resumed run continue
with bit-identical numbers; the caller restores its own data position and random state (e.g. pass
`extra={"rng": get_rng().bit_generator.state}`).

An adapter (Chapter 10: LoRA's matrices, a soft prompt, a new head on a frozen base) is the same
file holding only the trainable parameters: save_checkpoint(..., trainable_only=True), read back onto
the base with load_checkpoint(..., strict=False) (scratchlm.peft's save_adapter and load_adapter).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from scratchlm.fileio import atomic_write

FORMAT = 1


def _config_dict(config) -> dict | None:
    """A dataclass or mapping as a plain JSON-normalised dict (tuples become lists), or None."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    try:
        return json.loads(json.dumps(dict(config)))
    except (TypeError, ValueError) as e:
        raise TypeError(f"config must be a dataclass or dict of JSON values: {e}") from None


def model_config(model) -> dict | None:
    """The model's `.config` dataclass as a JSON-normalised dict, or None when it has none."""
    config = getattr(model, "config", None)
    return _config_dict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type) else None


def save_checkpoint(path, model, optimizer=None, config=None, step: int = 0, extra: dict | None = None,
                    trainable_only: bool = False) -> Path:
    """Write `model` (+ `optimizer`, `config`, `step`, JSON-able `extra`) to `path` atomically.
    Refuses, before writing anything, arrays holding NaN or infinity.

    trainable_only=True writes only the parameters that require gradients (each once, under its first
    name): an adapter of a frozen base (Chapter 10), loaded back with load_checkpoint(strict=False)."""
    path = Path(path)
    if trainable_only:
        arrays = {f"model/{name}": p.data for name, p in model.named_parameters() if p.requires_grad}
        if not arrays:
            raise ValueError(f"refusing to write {path}: trainable_only=True, but every parameter of the "
                             f"{type(model).__name__} is frozen (requires_grad=False)")
    else:
        arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    meta = {"format": FORMAT, "step": int(step), "model_config": model_config(model),
            "config": _config_dict(config), "extra": extra, "optimizer": None}
    if optimizer is not None:
        osd = optimizer.state_dict()
        arrays.update({f"optim/{key}": value for key, value in osd["state"].items()})
        meta["optimizer"] = {"type": type(optimizer).__name__, "param_groups": osd["param_groups"]}
    for key, value in arrays.items():
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = np.flatnonzero(~np.isfinite(value))
            raise ValueError(f"refusing to write checkpoint {path}: {key} holds {len(bad)} NaN or infinite "
                             f"value(s) (first at flat index {bad[0]}: {value.flat[bad[0]]}); the weights "
                             f"have diverged, and {path} is left as it was")
    try:
        arrays["meta"] = np.array(json.dumps(meta))
    except TypeError as e:
        raise TypeError(f"save_checkpoint: `extra` must hold only JSON values: {e}") from None

    with atomic_write(path, "wb") as f:  # a file object, so numpy does not append ".npz" to the name
        np.savez(f, **arrays)
    return path


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, arrays) of a checkpoint file without loading it into anything, with errors that
    name the file: what a caller reads to build the right model first (GPT.from_checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # checked first: np.load would try other formats, pickle included
        raise ValueError(f"{path} is not a checkpoint: not an .npz (zip) archive, or truncated")
    arrays, pickled = {}, []
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as e:
                    if "allow_pickle" not in str(e):
                        raise
                    pickled.append(key)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable checkpoint: {e}") from None
    if pickled:
        raise ValueError(f"{path}: entry {pickled[0]!r} holds pickled Python objects; a checkpoint holds "
                         f"only numeric arrays and JSON, and pickles are never loaded (unpickling can "
                         f"run arbitrary code)")
    if "meta" not in arrays:
        raise ValueError(f"{path} is not a scratchlm checkpoint: it has no 'meta' entry")
    try:
        meta = json.loads(arrays.pop("meta").item())
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: the 'meta' entry is not valid JSON: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')!r}, this scratchlm reads {FORMAT}")
    return meta, arrays


def _check_config(path: Path, saved: dict | None, given: dict, what: str = "config", given_name: str = "given",
                  hint: str = "") -> None:
    if saved is None:
        raise ValueError(f"{path}: checkpoint was saved without a {what}, but one was given to compare")
    missing = object()
    diffs = [f"{k}: checkpoint {saved.get(k, missing)!r}, {given_name} {given.get(k, missing)!r}"
             for k in sorted(set(saved) | set(given))
             if saved.get(k, missing) != given.get(k, missing)]
    if diffs:
        shown = "; ".join(d.replace(repr(missing), "(absent)") for d in diffs)
        raise ValueError(f"{path}: {what} differs from the checkpoint's: {shown}{hint}")


def load_checkpoint(path, model, optimizer=None, config=None, contents=None, strict: bool = True) -> dict:
    """Load `path` into `model` (and `optimizer`) in place and return its metadata
    {"step", "model_config", "config", "extra", "optimizer", "format"}. The model's own config, when
    it has one, must equal the saved model_config (checkpoints written before that field existed
    are not checked); when `config` is given it must equal the saved one. `contents` =
    read_checkpoint(path), when the caller has read the file already.

    strict=False loads a file that holds only some of the model's parameters (one written with
    trainable_only=True); the others keep their values. A parameter in the file that the model does
    not have is an error either way."""
    path = Path(path)
    meta, arrays = read_checkpoint(path) if contents is None else contents
    mine, saved_model_config = model_config(model), meta.get("model_config")
    if mine is not None and saved_model_config is not None:
        _check_config(path, saved_model_config, mine, what=f"the model's {type(model.config).__name__}",
                      given_name="model", hint="; build the model from the checkpoint's config")
    if config is not None:
        _check_config(path, meta["config"], _config_dict(config))
    model_sd = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        if not strict:                  # a part of the model, but nothing the model does not have
            unexpected = sorted(set(model_sd) - {name for name, _ in model.named_parameters(remove_duplicate=False)})
            if unexpected:
                raise KeyError(f"the {type(model).__name__} has no parameters {unexpected}")
        model.load_state_dict(model_sd, strict=strict)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: {e.args[0]}") from None
    if optimizer is not None:
        saved = meta.get("optimizer")
        if saved is None:
            raise ValueError(f"{path}: checkpoint holds no optimiser state")
        if saved["type"] != type(optimizer).__name__:
            raise ValueError(f"{path}: checkpoint holds {saved['type']} state, "
                             f"given a {type(optimizer).__name__}")
        state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
        try:
            optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    return meta
