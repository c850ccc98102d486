"""Checkpoints of [`jaxgeo.train.fit`][]: atomic writes with the SHA-256 of every file,
and the checks that a checkpoint is intact (its files unchanged since they were
committed) and belongs to this run (same model and optimiser structure, optimiser
hyperparameters, loss, data, key, batch size) before it is resumed."""

import hashlib
import json
import os
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._describe import describe


def fingerprint(tree) -> str:
    """A hash of the paths, shapes and dtypes of a pytree's array leaves: stable across
    processes (unlike a treedef's text, which shows function addresses)."""
    leaves = jtu.tree_flatten_with_path(eqx.filter(tree, eqx.is_array))[0]
    text = str([(jtu.keystr(path), leaf.shape, str(leaf.dtype)) for path, leaf in leaves])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(obj) -> str:
    """A hash of a configuration object's `describe`: e.g. an optax optimiser's
    hyperparameters, or a loss with its `functools.partial` keywords."""
    return hashlib.sha256(describe(obj).encode()).hexdigest()[:16]


def data_hash(data) -> str:
    """A hash of the shapes, dtypes and bytes of a pytree's leaves."""
    digest = hashlib.sha256()
    for leaf in jtu.tree_leaves(data):
        arr = np.ascontiguousarray(leaf)
        digest.update(str((arr.shape, arr.dtype)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:16]


def key_data(key: PRNGKeyArray) -> Array:
    """The raw bits of a key (typed `jax.random.key` or legacy `PRNGKey`)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return jnp.asarray(key)


def run_meta(
    loss_fn, optimizer, params, opt_state, data, key: PRNGKeyArray, num_steps: int, batch_size: int
):
    """What identifies a run: a checkpoint resumes only a run with the same meta."""
    return dict(
        fingerprint=fingerprint((params, opt_state)),
        optimizer=config_hash(optimizer),
        loss=config_hash(loss_fn),
        key=np.asarray(key_data(key)).ravel().tolist(),
        data=data_hash(data),
        num_steps=num_steps,
        batch_size=batch_size,
    )


# Checkpoints kept: the newest and the one before it, the fallback when the newest
# turns out damaged on resume.
KEPT_CHECKPOINTS = 2


def save_checkpoint(directory: Path, model, opt_state, step: int, key, losses, meta: dict) -> None:
    """Atomic: the state and losses go to files named by the step, then
    `checkpoint.json`, which names them (with their SHA-256) and the previous checkpoint's,
    is replaced in one `os.replace` (the commit). A crash at any point leaves the
    previous checkpoint complete and in use. Older files are deleted after the commit."""
    check_directory(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state, losses_file = f"state-{step}.eqx", f"losses-{step}.npy"
    eqx.tree_serialise_leaves(
        directory / state, (model, opt_state, jnp.asarray(step), key_data(key))
    )
    np.save(directory / losses_file, np.asarray(losses))
    kept = [
        entry
        for entry in committed_checkpoints(directory)
        if entry["step"] != step  # (a re-run step replaces its own files)
    ][: KEPT_CHECKPOINTS - 1]
    sha256 = {name: file_sha256(directory / name) for name in (state, losses_file)}
    entry = dict(step=step, state=state, losses=losses_file, sha256=sha256)
    info = dict(meta, **entry, earlier=kept)
    (directory / "checkpoint.json.tmp").write_text(json.dumps(info, indent=1))
    os.replace(directory / "checkpoint.json.tmp", directory / "checkpoint.json")
    named = {name for e in [entry, *kept] for name in (e["state"], e["losses"])}
    for path in [*directory.glob("state-*.eqx"), *directory.glob("losses-*.npy")]:
        if path.name not in named:
            path.unlink(missing_ok=True)


def check_directory(directory: Path) -> None:
    """Raise unless `directory` is a directory or does not exist yet."""
    if directory.exists() and not directory.is_dir():
        raise ValueError(
            f"fit: checkpoint_dir {directory} is an existing file, not a directory; pass "
            "a directory (it is created if missing)"
        )


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_info(directory: Path) -> dict:
    """The committed checkpoint's `checkpoint.json`, or a clear error if unreadable."""
    path = directory / "checkpoint.json"
    try:
        info = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        info = f"not JSON ({error})"
    if not isinstance(info, dict) or not {"state", "losses", "step"} <= info.keys():
        raise ValueError(
            f"fit: {path} is damaged: {info if isinstance(info, str) else 'fields missing'}; "
            "the checkpoint cannot be trusted. Delete the directory to start again. "
            "Nothing was overwritten."
        )
    return info


def committed_checkpoints(directory: Path) -> list[dict]:
    """The checkpoints committed in `directory`, newest first, each a dict with `step`,
    `state`, `losses` and `sha256` (none if there is no checkpoint)."""
    check_directory(directory)
    if not (directory / "checkpoint.json").exists():
        return []
    info = read_info(directory)
    newest = {k: info[k] for k in ("step", "state", "losses", "sha256") if k in info}
    return [newest, *info.get("earlier", [])]


def _verify_files(directory: Path, info: dict) -> None:
    """Raise unless the checkpoint's files are those it committed (SHA-256)."""
    if "sha256" not in info:
        raise ValueError(
            f"fit: the checkpoint in {directory} has no checksums (written by an older "
            "jaxgeo), so it cannot be verified; delete it to start again."
        )
    for name, expected in info["sha256"].items():
        path = directory / name
        actual = file_sha256(path) if path.exists() else "missing"
        if actual != expected:
            raise ValueError(
                f"fit: {path} is corrupted or was changed after it was written (its "
                f"SHA-256 {actual[:16]}... differs from the committed {expected[:16]}...); "
                "delete the directory to start again. Nothing was overwritten."
            )


def _verify(directory: Path, info: dict, meta: dict) -> None:
    """Raise unless the checkpoint `info` was written by the run described by `meta`."""
    if info.get("fingerprint") != meta["fingerprint"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written for a different model or "
            f"optimiser (structure {info.get('fingerprint')}, this run's "
            f"{meta['fingerprint']}); use another checkpoint_dir or delete it. "
            "Nothing was overwritten."
        )
    if not {"optimizer", "loss"} <= info.keys():
        raise ValueError(
            f"fit: the checkpoint in {directory} has no record of its optimiser and loss "
            "configuration (written by an older jaxgeo), so it cannot be verified; delete "
            "it to start again."
        )
    if info["optimizer"] != meta["optimizer"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written with a different optimiser "
            "configuration (e.g. another learning rate or schedule); resuming would give "
            "neither run. Use another checkpoint_dir or delete it. Nothing was overwritten."
        )
    if info["loss"] != meta["loss"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written with a different loss_fn or "
            "loss arguments (e.g. another sigma in its functools.partial); resuming would "
            "give neither run. Use another checkpoint_dir or delete it. Nothing was "
            "overwritten."
        )
    if info.get("data") != meta["data"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written for different data; use "
            "another checkpoint_dir or delete it. Nothing was overwritten."
        )
    if info.get("step", 0) > meta["num_steps"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} is at step {info['step']}, beyond this "
            f"run's num_steps = {meta['num_steps']}"
        )
    if info.get("key") != meta["key"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written with a different key "
            "(seed); resuming it would not reproduce this run. Nothing was overwritten."
        )
    if info.get("batch_size") != meta["batch_size"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written with batch_size "
            f"{info.get('batch_size')}, this run uses {meta['batch_size']}; resuming would "
            "not reproduce an uninterrupted run. Nothing was overwritten."
        )


def _load_entry(directory: Path, entry: dict, model, opt_state, key):
    """The state and losses of one committed checkpoint, verified by SHA-256."""
    _verify_files(directory, entry)
    model, opt_state, step, _ = eqx.tree_deserialise_leaves(
        directory / entry["state"], (model, opt_state, jnp.asarray(0), key_data(key))
    )
    losses = np.load(directory / entry["losses"])
    if int(step) != entry["step"] or losses.shape[0] < int(step):
        raise ValueError(f"fit: the checkpoint in {directory} is inconsistent; delete it")
    return model, opt_state, int(step), losses


def load_checkpoint(directory: Path, model, opt_state, key, meta: dict):
    """The model, optimiser state, step and losses of the newest intact checkpoint in
    `directory`, after checking that it belongs to this run (`meta`). If the newest is
    damaged, the one before it is used, with a warning naming the damage."""
    info = read_info(directory)
    _verify(directory, info, meta)
    entries = committed_checkpoints(directory)
    for i, entry in enumerate(entries):
        try:
            loaded = _load_entry(directory, entry, model, opt_state, key)
        except ValueError as error:
            if i == len(entries) - 1:
                raise
            damage = error
            continue
        if i > 0:
            warnings.warn(
                f"{str(damage).split(';')[0]}: the checkpoint at step {entries[0]['step']} "
                f"is damaged; resuming from the earlier one at step {entry['step']}.",
                stacklevel=3,
            )
        return loaded
    raise AssertionError("unreachable: a committed checkpoint names at least one entry")
