"""Trained models kept between chapters, so that a later chapter need not train them again.

A chapter that trains a model the book uses again (the serving chapter serves chapter 10's
two-tower model and chapter 7's user LSTM) ``save``s its weights; the later chapter calls
``fit_or_load``, which loads them when they were trained with the same parameters, on the same
data, by the same code and libraries, and trains the model itself otherwise (a chapter run
alone, or after any change). The key of a saved model is a hash of all of that:

* the model's class and its constructor's parameters (not ``progress``);
* the split (a hash of its three parts) and the run's mode and seed;
* the source of every module of ``recsys_helpers`` and the versions of TensorFlow, Keras and
  NumPy.

Weights go to ``RECSYS_CACHE_DIR/models/<class>-<key>.npz`` (written to a temporary file and
renamed, so a reader never sees half a file), with the training time and the per-epoch history.
Any ``base.KerasTrainer`` works: loading builds its networks as ``fit`` does (same seed), puts
the weights in, and calls ``on_epoch_end`` (which, for example, computes the two-tower model's
factors).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ..datasets.retail import Split
from ..settings import get_settings
from .base import KerasTrainer

PACKAGE = Path(__file__).resolve().parent.parent


def parameters(model: KerasTrainer) -> dict:
    """The constructor parameters of ``model`` (every class of its hierarchy), as JSON values; an
    options object (a dataclass, such as ``lstm.Network``) counts as its fields."""
    names = []
    for cls in type(model).__mro__:
        if "__init__" in vars(cls):
            for name, p in inspect.signature(cls.__init__).parameters.items():
                if dataclasses.is_dataclass(p.default):
                    names += [f.name for f in dataclasses.fields(p.default)]
                elif name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    names.append(name)
    out = {}
    for name in sorted(set(names) - {"progress"}):
        if hasattr(model, name):
            value = getattr(model, name)
            out[name] = value if isinstance(value, (str, int, float, bool, type(None))) else _name(value)
    return out


def _name(value) -> str:
    return getattr(value, "__qualname__", None) or type(value).__qualname__


def split_hash(split: Split) -> str:
    digest = hashlib.sha256()
    for part in (split.train, split.validation, split.test):
        digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def code_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def key(model: KerasTrainer, split: Split) -> str:
    settings = get_settings()
    described = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": parameters(model),
        "split": split_hash(split),
        "mode": settings.mode,
        "code": code_hash(),
        "versions": [tf.__version__, keras.__version__, np.__version__],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:20]


def path_of(model: KerasTrainer, split: Split, folder: Path | None = None) -> Path:
    folder = Path(folder) if folder is not None else get_settings().cache_dir / "models"
    return folder / f"{type(model).__name__}-{key(model, split)}.npz"


def save(model: KerasTrainer, split: Split, folder: Path | None = None) -> Path:
    """Keep the weights of a fitted ``model`` (trained on ``split``) for ``fit_or_load``."""
    return _save(model, path_of(model, split, folder))


def _save(model: KerasTrainer, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {f"w{i}": v.numpy() for i, v in enumerate(model.variables_)}
    about = {"fit_seconds": model.fit_seconds_, "history": model.history_.to_dict(orient="list")}
    buffer = io.BytesIO()
    np.savez(buffer, about=np.array(json.dumps(about, default=lambda value: value.item())), **weights)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(handle, "wb") as file:
        file.write(buffer.getvalue())
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path


def load(model: KerasTrainer, split: Split, folder: Path | None = None) -> bool:
    """Put the saved weights of the same model into ``model``; ``False`` when there are none."""
    return _load(model, split, path_of(model, split, folder))


def _load(model: KerasTrainer, split: Split, path: Path) -> bool:
    if not path.exists():
        return False
    with np.load(path) as saved:
        about = json.loads(str(saved["about"]))
        keras.utils.set_random_seed(model.seed)
        model.networks_ = model.build(split)
        variables = model.variables_
        if len(saved.files) - 1 != len(variables):
            raise ValueError(f"{path} holds {len(saved.files) - 1} weights, the model has {len(variables)}")
        for i, variable in enumerate(variables):
            variable.assign(saved[f"w{i}"])
    model.on_epoch_end()
    model.fit_seconds_ = about["fit_seconds"]
    model.history_ = pd.DataFrame(about["history"])
    return True


def fit_or_load(model: KerasTrainer, split: Split, folder: Path | None = None, **fit_kwargs):
    """``model`` with the weights its own chapter saved, or trained here (and saved) if none.

    Sets ``loaded_``: whether the weights were loaded. ``fit_seconds_`` is the training time of
    the run that trained them.
    """
    path = path_of(model, split, folder)  # hashes the split and the code once
    model.loaded_ = _load(model, split, path)
    if not model.loaded_:
        model.fit(split, **fit_kwargs)
        _save(model, path)
    return model
