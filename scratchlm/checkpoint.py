"""Checkpoints: a model, its optimiser and its config in one .npz file (Chapter 3; used by every
training run from Chapter 4 on).

Layout of the archive (np.savez, uncompressed, no pickles):

    model/<parameter name>    the model's state_dict, e.g. model/blocks.0.attn.c_attn.weight
    optim/<index>.<field>     the optimiser's state arrays, e.g. optim/0.exp_avg
    meta                      0-d unicode array holding JSON:
                              {"format", "step", "config", "extra", "optimizer": {"type", "param_groups"}}

Writing is atomic (a temporary file in the same folder, then os.replace), so a crash mid-write
leaves the previous checkpoint intact. Reading uses np.load(allow_pickle=False): an archive holding
pickled objects is refused, since unpickling runs code. Loading checks, before changing anything
it can, that the config equals the one given (naming each differing key) and that every parameter
name and shape matches (naming the parameter). Restoring model and optimiser state this way makes
a resumed run continue with bit-identical numbers; the caller restores its own data position and
random state (e.g. pass `extra={"rng": get_rng().bit_generator.state}`).
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


def save_checkpoint(path, model, optimizer=None, config=None, step: int = 0, extra: dict | None = None) -> Path:
    """Write `model` (+ `optimizer`, `config`, `step`, JSON-able `extra`) to `path` atomically."""
    path = Path(path)
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    meta = {"format": FORMAT, "step": int(step), "config": _config_dict(config), "extra": extra,
            "optimizer": None}
    if optimizer is not None:
        osd = optimizer.state_dict()
        arrays.update({f"optim/{key}": value for key, value in osd["state"].items()})
        meta["optimizer"] = {"type": type(optimizer).__name__, "param_groups": osd["param_groups"]}
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


def _check_config(path: Path, saved: dict | None, given: dict) -> None:
    if saved is None:
        raise ValueError(f"{path}: checkpoint was saved without a config, but one was given to compare")
    missing = object()
    diffs = [f"{k}: checkpoint {saved.get(k, missing)!r}, given {given.get(k, missing)!r}"
             for k in sorted(set(saved) | set(given))
             if saved.get(k, missing) != given.get(k, missing)]
    if diffs:
        shown = "; ".join(d.replace(repr(missing), "(absent)") for d in diffs)
        raise ValueError(f"{path}: config differs from the checkpoint's: {shown}")


def load_checkpoint(path, model, optimizer=None, config=None, contents=None) -> dict:
    """Load `path` into `model` (and `optimizer`) in place and return its metadata
    {"step", "config", "extra", "optimizer", "format"}. When `config` is given it must equal the
    saved one. `contents` = read_checkpoint(path), when the caller has read the file already."""
    path = Path(path)
    meta, arrays = read_checkpoint(path) if contents is None else contents
    if config is not None:
        _check_config(path, meta["config"], _config_dict(config))
    model_sd = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        model.load_state_dict(model_sd)
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
