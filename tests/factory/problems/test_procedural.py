import pytest

from factory.errors import ProblemSourceError
from factory.problems import check_source, load_problems
from factory.recipe import SourceConfig, load_recipe


def test_seeded_and_interleaved():
    cfg = load_recipe("math-cot").source
    first, second = list(load_problems(cfg)), list(load_problems(cfg))
    assert [(r.problem, r.gold) for r in first] == [(r.problem, r.gold) for r in second]
    assert len(first) == cfg.limit
    assert [r.source for r in first[:4]] == [
        "reasoning_gym/basic_arithmetic",
        "reasoning_gym/chain_sum",
    ] * 2
    assert len({r.problem_id for r in first}) == len(first)


def test_gold_answers_are_exact():
    cfg = load_recipe("math-cot").source
    for r in load_problems(cfg):
        expression = r.meta["generator_metadata"]["expression"]
        assert eval(expression) == int(r.gold), (r.problem, r.gold)  # only + - * in the recipe


def test_other_seed_other_problems():
    cfg = load_recipe("math-cot", ["source.seed=7"]).source
    base = load_recipe("math-cot").source
    assert [r.problem for r in load_problems(cfg)] != [r.problem for r in load_problems(base)]


def test_unknown_generator_suggests():
    with pytest.raises(
        ProblemSourceError, match="unknown reasoning-gym generator 'chain_summ'.*chain_sum"
    ):
        check_source(SourceConfig(generators=["chain_summ"], limit=2))


def test_bad_generator_args():
    cfg = SourceConfig(
        generators=["chain_sum"], generator_args={"chain_sum": {"no_such_arg": 1}}, limit=2
    )
    with pytest.raises(ProblemSourceError, match="source.generator_args.chain_sum"):
        check_source(cfg)


def test_limit_required():
    with pytest.raises(ProblemSourceError, match="need a problem count"):
        check_source(SourceConfig(limit=None))
