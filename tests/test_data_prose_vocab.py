"""The vocabulary sweep on prose: its definition expands to the planned cells, and where Debian's
packages are installed, its runs stay inside one epoch at every vocabulary and the documented
token counts are the tokenizers'."""

from movelab.data import prose
from movelab.sweep import load_sweep

from test_data_prose import REPO, needs_packages, skip_unless_this_build_is_documented

VOCABULARIES = (1024, 4096, 16384)


def test_vocab_sweep_is_d4_four_variants_three_vocabularies_two_seeds_one_budget():
    sweep = load_sweep("vocab-prose", REPO / "results")
    cells = {(p.run.model.vocab_size, p.variant, p.run.train.seed) for p in sweep.runs}
    assert cells == {(v, variant, seed) for v in VOCABULARIES
                     for variant in ("standard", "move x1", "move x4", "move x16")
                     for seed in (0, 1)}
    assert {p.run.model.depth for p in sweep.runs} == {4}
    assert {p.run.train.tokens for p in sweep.runs} == {3_670_016}
    # its rows are claims (PLAN.md: nothing is chosen from them), so they score the test split
    assert {(p.run.train.corpus, p.run.train.eval_split) for p in sweep.runs} == {("prose", "test")}
    assert len({p.run_id for p in sweep.runs}) == 24


@needs_packages
def test_vocab_sweep_runs_see_no_document_twice_and_the_docs_show_the_tokenizers():
    table = prose.vocabulary_table(VOCABULARIES)
    train_tokens = [float(line.split(" | ")[1]) * 1e6 for line in table.splitlines()[2:]]
    assert min(train_tokens) > 3_670_016 and train_tokens == sorted(train_tokens, reverse=True)
    page = skip_unless_this_build_is_documented()  # the tables are a build's (docs/corpora.md)
    assert table in page, f"docs/corpora.md is out of date; paste in:\n{table}"
