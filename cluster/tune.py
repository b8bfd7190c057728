"""``quorum tune``: LoRA fine-tuning with peft from a JSONL chat dataset into an adapter vLLM can serve.

:func:`tune` trains a LoRA adapter on a base model (float32 on CPU; the model's own dtype handling on GPU is not
used: weights are float32) with a plain torch loop -- AdamW, linear warmup then linear decay, gradient clipping
-- on the assistant turns of the rows in :class:`TuneConfig.data` (see :mod:`quorum.cluster.tune_data`). The
output directory is a standard peft adapter (``adapter_config.json`` + ``adapter_model.safetensors``, LoRA on
linear projections only, rank at most 64) plus ``quorum-tune.json`` (the options and the loss of every step).

Guarantees:

* **Nothing written on failure.** The dataset is validated, and every row rendered, before the model loads. The
  adapter is written to ``.<name>.partial-<pid>`` next to the output and renamed into place only after training
  finished; any failure (a bad row, an exception, Ctrl-C) leaves nothing at the output path.
* **Resumable.** With ``checkpoint_every`` > 0, the adapter weights, optimizer, scheduler, step and torch RNG
  state are written every that many steps to ``.<name>.checkpoints/step-N`` *next to* the output (not inside it,
  so a failed run leaves the output path empty while keeping what it takes to continue). ``resume`` continues
  from the newest one (the options that shape training must be unchanged) and reaches the same final weights as
  an uninterrupted run. The checkpoints are deleted once the adapter is in place.
* **Deterministic.** The seed fixes the LoRA initialisation, the dropout masks and the data order (epoch ``e``
  shuffles with ``seed + e``); two runs with the same options on the same machine write bit-identical weights.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from .tune_data import ChatRow, EncodedRow

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MAX_RANK = 64
METADATA_NAME = "quorum-tune.json"
_STATE_NAME = "state.pt"
_CHECKPOINT_META = "checkpoint.json"
_ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Options that may change between an interrupted run and its resumption.
_RESUME_FREE = frozenset({"resume", "checkpoint_every"})


class TuneError(Exception):
    """Training cannot start or continue; the message names the option or file to fix."""


class TuneConfig(BaseModel):
    """Options of one ``quorum tune`` run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field(
        "smollm2-135m-instruct",
        description="Model to adapt: a model id of the quorum config, embedded:<name>, or a Hugging Face model "
        "directory.",
    )
    data: str = Field(description="JSONL chat dataset, one {messages, tools?} object per line.")
    output: str = Field(description="Adapter directory to create; it must not exist yet.")
    rank: int = Field(8, ge=1, le=MAX_RANK, description="LoRA rank r (vLLM serves ranks up to 64).")
    alpha: int = Field(16, ge=1, description="LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input during training.")
    target_modules: tuple[str, ...] = Field(
        LORA_TARGETS,
        min_length=1,
        description=f"Linear layers that get LoRA weights, among {', '.join(LORA_TARGETS)} "
        "(no embeddings or lm_head: vLLM's LoRA handles those differently).",
    )
    epochs: int = Field(1, ge=1, description="Passes over the data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate of AdamW.")
    warmup_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share of the steps with a linear warmup from 0 to lr; then linear decay to 0."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA weights.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradients are clipped to this global L2 norm.")
    batch_size: int = Field(4, ge=1, description="Rows per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Forward passes accumulated per optimizer step.")
    max_seq_len: int = Field(1024, ge=16, description="A row that renders to more tokens is a dataset error.")
    seed: int = Field(0, ge=0, description="Seeds LoRA initialisation, dropout and the data order.")
    checkpoint_every: int = Field(0, ge=0, description="Write a resumable checkpoint every this many steps (0: never).")
    resume: bool = Field(False, description="Continue from the newest checkpoint of an interrupted run.")

    @field_validator("target_modules")
    @classmethod
    def _known_targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(LORA_TARGETS))
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not supported; use some of {', '.join(LORA_TARGETS)}")
        if len(set(value)) != len(value):
            raise ValueError("a module is listed twice")
        return value

    @model_validator(mode="after")
    def _distinct_paths(self) -> TuneConfig:
        if Path(self.data).expanduser().absolute() == Path(self.output).expanduser().absolute():
            raise ValueError("output must not be the data file")
        return self

    @property
    def output_dir(self) -> Path:
        return Path(self.output).expanduser().absolute()

    @property
    def checkpoint_dir(self) -> Path:
        """Where checkpoints go: ``.<output name>.checkpoints`` beside the output."""
        return self.output_dir.with_name(f".{self.output_dir.name}.checkpoints")


@dataclass(frozen=True)
class TuneResult:
    """What a finished run wrote and how training went."""

    output_dir: Path
    rows: int
    steps: int
    resumed_from_step: int
    losses: tuple[float, ...]
    """Mean loss per trained token of every optimizer step, including steps before a resumption."""
    seconds: float
    """Wall time of this invocation (model load and training; not of steps run before a resumption)."""


StepCallback = Callable[[int, float], None]


def tune(
    config: TuneConfig, base_dir: str | Path, progress: bool = True, on_step: StepCallback | None = None
) -> TuneResult:
    """Train a LoRA adapter of the Hugging Face model at ``base_dir`` as ``config`` says; see the module docs.

    ``on_step(step, loss)`` is called after every optimizer step (and its checkpoint, if one is due).
    Raises :class:`TuneError` for unusable options, :class:`~quorum.cluster.tune_data.DatasetError` for bad rows.
    """
    started = time.monotonic()
    output = config.output_dir
    if output.exists():
        raise TuneError(f"output: {output} already exists; choose a new directory")
    checkpoint = _newest_checkpoint(config.checkpoint_dir)
    if config.resume and checkpoint is None:
        raise TuneError(f"resume: no checkpoint in {config.checkpoint_dir}")
    if not config.resume and config.checkpoint_dir.exists():
        raise TuneError(
            f"output: checkpoints of an earlier run of this output exist in {config.checkpoint_dir}; "
            "pass resume to continue it, or delete that directory"
        )

    from .tune_data import load_rows

    rows = load_rows(Path(config.data).expanduser())

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    encoded = _encode(config, rows, tokenizer)
    data_sha256 = _sha256(Path(config.data).expanduser())
    if checkpoint is not None:
        _check_resumable(checkpoint, config, data_sha256)

    torch.manual_seed(config.seed)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    base.config.use_cache = False
    model = _peft_model(base, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total = total_steps(config, len(encoded))
    warmup = int(total * config.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, warmup, total))
    losses: list[float] = []
    step = 0
    if checkpoint is not None:
        step, losses = _load_checkpoint(checkpoint, model, optimizer, scheduler)
    resumed_from = step

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    from tqdm import tqdm

    with tqdm(total=total, initial=step, desc="tune", unit="step", disable=not progress) as bar:
        while step < total:
            batches = [
                _batch([encoded[i] for i in indices], pad_id) for indices in _step_rows(config, len(encoded), step)
            ]
            tokens = sum(int((labels[:, 1:] != -100).sum()) for _, _, labels in batches)
            step_loss = 0.0
            for input_ids, attention, labels in batches:
                logits = model(input_ids=input_ids, attention_mask=attention).logits
                loss_sum = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), reduction="sum"
                )
                (loss_sum / max(tokens, 1)).backward()
                step_loss += loss_sum.item() / max(tokens, 1)
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(step_loss)
            bar.update()
            bar.set_postfix(loss=f"{step_loss:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                _save_checkpoint(config, model, optimizer, scheduler, step, losses, data_sha256)
            if on_step is not None:
                on_step(step, step_loss)

    with _partial_dir(output) as work:
        model.save_pretrained(str(work))
        metadata = {"config": config.model_dump(mode="json"), "rows": len(encoded), "steps": step, "losses": losses}
        (work / METADATA_NAME).write_text(json.dumps(metadata, indent=2) + "\n")
        for path in work.iterdir():  # safetensors writes 0600: give every file the directory's (umask) mode
            path.chmod(work.stat().st_mode & 0o666)
        work.rename(output)
    shutil.rmtree(config.checkpoint_dir, ignore_errors=True)
    return TuneResult(
        output_dir=output,
        rows=len(encoded),
        steps=step,
        resumed_from_step=resumed_from,
        losses=tuple(losses),
        seconds=time.monotonic() - started,
    )


def total_steps(config: TuneConfig, rows: int) -> int:
    """Optimizer steps of a run over ``rows`` rows: ``max_steps``, or enough for ``epochs`` passes."""
    if config.max_steps is not None:
        return config.max_steps
    return math.ceil(config.epochs * math.ceil(rows / config.batch_size) / config.grad_accum)


def _step_rows(config: TuneConfig, rows: int, step: int) -> list[list[int]]:
    """Row indices of each forward pass of optimizer step ``step`` (0-based), a pure function of the options.

    Forward pass ``k`` overall is batch ``k mod B`` of epoch ``k div B`` (``B`` batches per epoch), and epoch ``e``
    visits the rows in the order of a permutation seeded with ``seed + e``.
    """
    import torch

    per_epoch = math.ceil(rows / config.batch_size)
    passes = []
    for k in range(step * config.grad_accum, (step + 1) * config.grad_accum):
        epoch, position = divmod(k, per_epoch)
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
        passes.append(order[position * config.batch_size : (position + 1) * config.batch_size])
    return passes


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def _encode(config: TuneConfig, rows: Sequence[ChatRow], tokenizer: Any) -> list[EncodedRow]:
    from .tune_data import DatasetError, encode_row

    encoded = [encode_row(tokenizer, row) for row in rows]
    too_long = [
        f"row {row.line}: messages: renders to {len(item.input_ids)} tokens, more than max_seq_len {config.max_seq_len}"
        for row, item in zip(rows, encoded, strict=True)
        if len(item.input_ids) > config.max_seq_len
    ]
    if too_long:
        raise DatasetError(config.data, too_long[:20], len(too_long))
    return encoded


def _batch(rows: Sequence[EncodedRow], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded input ids, attention mask and labels (-100 on padding) of ``rows``."""
    import torch

    width = max(len(row.input_ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        ids[i, :n] = torch.tensor(row.input_ids)
        attention[i, :n] = 1
        labels[i, :n] = torch.tensor(row.labels)
    return ids, attention, labels


def _peft_model(base: Any, config: TuneConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _shaping_options(config: TuneConfig) -> dict[str, Any]:
    return {k: v for k, v in config.model_dump(mode="json").items() if k not in _RESUME_FREE}


@contextlib.contextmanager
def _partial_dir(target: Path) -> Iterator[Path]:
    """A fresh directory beside ``target``, removed again unless the body renamed it away."""
    work = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _newest_checkpoint(directory: Path) -> Path | None:
    steps = [
        (int(path.name.removeprefix("step-")), path)
        for path in (directory.glob("step-*") if directory.is_dir() else ())
        if path.name.removeprefix("step-").isdigit() and (path / _CHECKPOINT_META).is_file()
    ]
    return max(steps)[1] if steps else None


def _save_checkpoint(
    config: TuneConfig, model: Any, optimizer: Any, scheduler: Any, step: int, losses: list[float], data_sha256: str
) -> None:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = config.checkpoint_dir / f"step-{step}"
    with _partial_dir(target) as work:
        weights = {name: tensor.detach().contiguous() for name, tensor in get_peft_model_state_dict(model).items()}
        save_file(weights, str(work / _ADAPTER_WEIGHTS))
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "step": step,
            "losses": losses,
        }
        torch.save(state, work / _STATE_NAME)
        meta = {"step": step, "options": _shaping_options(config), "data_sha256": data_sha256}
        (work / _CHECKPOINT_META).write_text(json.dumps(meta, indent=2) + "\n")
        work.rename(target)
    for older in config.checkpoint_dir.glob("step-*"):
        if older != target:
            shutil.rmtree(older, ignore_errors=True)


def _check_resumable(checkpoint: Path, config: TuneConfig, data_sha256: str) -> None:
    meta = json.loads((checkpoint / _CHECKPOINT_META).read_text())
    saved = meta.get("options", {})
    for name, value in _shaping_options(config).items():
        if saved.get(name) != value:
            raise TuneError(
                f"resume: {name} is {value!r} but the checkpoint {checkpoint} was made with {saved.get(name)!r}; "
                "resume with the same options"
            )
    if meta.get("data_sha256") != data_sha256:
        raise TuneError(f"resume: data {config.data} changed since the checkpoint {checkpoint} was written")


def _load_checkpoint(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any) -> tuple[int, list[float]]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(checkpoint / _ADAPTER_WEIGHTS)))
    state = torch.load(checkpoint / _STATE_NAME, weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return int(state["step"]), [float(x) for x in state["losses"]]


# -- command line ----------------------------------------------------------------------------------------------

_CLI_OPTIONS: tuple[tuple[str, str, type | None], ...] = (
    ("--rank", "rank", int),
    ("--alpha", "alpha", int),
    ("--dropout", "dropout", float),
    ("--epochs", "epochs", int),
    ("--max-steps", "max_steps", int),
    ("--lr", "lr", float),
    ("--warmup-fraction", "warmup_fraction", float),
    ("--weight-decay", "weight_decay", float),
    ("--max-grad-norm", "max_grad_norm", float),
    ("--batch-size", "batch_size", int),
    ("--grad-accum", "grad_accum", int),
    ("--max-seq-len", "max_seq_len", int),
    ("--seed", "seed", int),
    ("--checkpoint-every", "checkpoint_every", int),
)


def add_tune_parser(subparsers: Any) -> None:
    """Add ``quorum tune`` to the ``quorum`` command's subparsers (imports nothing heavy)."""
    fields = TuneConfig.model_fields
    parser = subparsers.add_parser(
        "tune", help="LoRA-fine-tune a model on a JSONL chat dataset into a servable adapter (no cluster needed)"
    )
    parser.add_argument("--data", required=True, help=fields["data"].description)
    parser.add_argument("--output", required=True, help=fields["output"].description)
    parser.add_argument(
        "--base", dest="base_model", help=f"{fields['base_model'].description} (default: the config's default model)"
    )
    parser.add_argument(
        "--config", help="YAML config whose models and model_cache_dir resolve --base (default: shipped)"
    )
    parser.add_argument("--target-modules", help=f"comma-separated; default {','.join(LORA_TARGETS)}")
    for flag, name, kind in _CLI_OPTIONS:
        default = fields[name].default
        parser.add_argument(flag, dest=name, type=kind, help=f"{fields[name].description} (default: {default})")
    parser.add_argument("--resume", action="store_true", default=None, help=fields["resume"].description)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    """``quorum tune``: exit 0 with the adapter written, 2 for bad options or data, 130 on Ctrl-C."""
    import importlib.util

    missing = [name for name in ("torch", "transformers", "peft", "tqdm") if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"`quorum tune` needs the server stack ({', '.join(missing)} not installed): "
            "pip install 'quorum[server,cpu]'",
            file=sys.stderr,
        )
        return 2
    from .config import DEFAULT_CONFIG, ConfigError, ModelConfig, load_config
    from .models import ModelSourceError, resolve_source
    from .tune_data import DatasetError

    options: dict[str, Any] = {
        name: getattr(args, name) for _, name, _ in _CLI_OPTIONS if getattr(args, name) is not None
    }
    if args.target_modules:
        options["target_modules"] = tuple(m.strip() for m in args.target_modules.split(",") if m.strip())
    if args.resume:
        options["resume"] = True
    try:
        quorum_config = load_config(args.config or DEFAULT_CONFIG)
        base_name = args.base_model or quorum_config.default_model_id
        config = TuneConfig(base_model=base_name, data=args.data, output=args.output, **options)
        by_id = {m.id: m for m in quorum_config.models}
        model = by_id.get(base_name) or ModelConfig(id="tune-base", source=base_name)
        base_dir = resolve_source(model, quorum_config.model_cache_dir)
        if not Path(base_dir).is_dir():
            raise TuneError(f"base_model: {base_name} is not a local model (no model hub access); use a directory")
        result = tune(config, base_dir, progress=not args.no_progress)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "options"
            print(f"tune: {field}: {error['msg']}", file=sys.stderr)
        return 2
    except (ConfigError, ModelSourceError, TuneError, DatasetError) as exc:
        print(f"tune: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tune: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "tune: interrupted; nothing written to the output (continue from a checkpoint with --resume)",
            file=sys.stderr,
        )
        return 130
    first, last = result.losses[0], result.losses[-1]
    print(
        f"adapter written to {result.output_dir}: {result.rows} rows, {result.steps} steps "
        f"(resumed at {result.resumed_from_step}), loss {first:.4f} -> {last:.4f}, {result.seconds:.0f} s"
    )
    return 0
