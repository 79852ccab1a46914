"""Teacher backends. `BACKENDS` is the one visible name → loader mapping; each loader imports
its heavy libraries only when chosen, so CPU-only installs and `factory --help` stay light."""

from __future__ import annotations

from collections.abc import Callable

from factory.recipe import TeacherConfig
from factory.teachers.base import Sample, Teacher


def _transformers(cfg: TeacherConfig) -> Teacher:
    from factory.teachers.transformers import TransformersTeacher

    return TransformersTeacher(cfg)


def _openai(cfg: TeacherConfig) -> Teacher:
    from factory.teachers.openai import OpenAITeacher

    return OpenAITeacher(cfg)


def _vllm(cfg: TeacherConfig) -> Teacher:
    from factory.teachers.vllm import VLLMTeacher

    return VLLMTeacher(cfg)


def _llamacpp(cfg: TeacherConfig) -> Teacher:
    from factory.teachers.llamacpp import LlamaCppTeacher

    return LlamaCppTeacher(cfg)


def _solver(cfg: TeacherConfig) -> Teacher:
    from factory.teachers.solver import SolverTeacher

    return SolverTeacher(cfg)


BACKENDS: dict[str, Callable[[TeacherConfig], Teacher]] = {
    "transformers": _transformers,
    "openai": _openai,
    "vllm": _vllm,
    "llamacpp": _llamacpp,
    "solver": _solver,
}


def load_teacher(cfg: TeacherConfig) -> Teacher:
    return BACKENDS[cfg.backend](cfg)


__all__ = ["BACKENDS", "Sample", "Teacher", "load_teacher"]
