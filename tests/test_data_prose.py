"""The `prose` corpus: dictd databases and Sphinx pages to documents, deduplication and the
three-way split, on small databases written here; and on Debian's packages when installed."""

import gzip
import re
from pathlib import Path

import pytest

from movelab.data import DataError, load_corpus, prepare_text_data
from movelab.data import prose
from movelab.data.corpus import Corpus
from movelab.data.prose import (DICTD_ALPHABET, Document, Source, clean_entry, decode_dictd_number,
                                dictd_groups, deduplicate, load_prose, reflow, split_of)
from movelab.data.tokenizer import load_or_train_tokenizer

REPO = Path(__file__).resolve().parents[1]


def encode(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 64)
        digits = DICTD_ALPHABET[digit] + digits
        if not number:
            return digits


def write_dictd(path: Path, entries: list[tuple[list[str], str]]) -> Path:
    """A dictd database at path.index / path.dict.dz: each entry's text indexed under its
    headwords (the index sorted by headword, as dictfmt writes it)."""
    data, index = b"", []
    for headwords, text in entries:
        raw = text.encode()
        index += [(headword, len(data), len(raw)) for headword in headwords]
        data += raw
    path.with_suffix(".index").write_text("".join(
        f"{word}\t{encode(offset)}\t{encode(length)}\n" for word, offset, length in sorted(index)))
    path.with_suffix(".dict.dz").write_bytes(gzip.compress(data))
    return path


GCIDE_ENTRY = """Abandon \\A*ban"don\\ ([.a]*b[a^]n"d[u^]n), v. t. [OF.
   abandoner; cf. {Ban}, and [ae]ppel.]
   1. To cast or drive out; to banish.
      [1913 Webster]

            That he might . . . abandon them from him. --Udall.
      [1913 Webster]

   2. To give up absolutely; to well-
      known ends.
      [1913 Webster +PJC]
"""

GCIDE_TEXT = """Abandon, v. t. [OF. abandoner; cf. Ban, and æppel.]
1. To cast or drive out; to banish.

That he might . . . abandon them from him. --Udall.

2. To give up absolutely; to well-known ends."""


def test_dictd_numbers_are_base64_most_significant_first():
    assert [decode_dictd_number(t) for t in ("A", "B", "/", "BA", "5I")] == [0, 1, 63, 64,
                                                                              57 * 64 + 8]
    assert all(decode_dictd_number(encode(n)) == n for n in (0, 63, 64, 4095, 39_952_321))
    with pytest.raises(DataError, match="base-64"):
        decode_dictd_number("a-b")


def test_index_groups_entries_by_case_folded_headword_in_file_order():
    index = ("00-database-info\tA\tK\n"  # the server's own entry: not a document
             "Abandon\tBA\tC\n" "abandon\tA\tK\n"  # two entries of one headword
             "2d\tCA\tD\n" "2nd\tCA\tD\n")  # one entry under two headwords: the first keeps it
    assert dictd_groups(index) == [("abandon", [(0, 10), (64, 2)]), ("2d", [(128, 3)])]
    with pytest.raises(DataError, match="headword<TAB>offset"):
        dictd_groups("no tabs here\n")


def test_gcide_entry_loses_markup_and_keeps_its_senses():
    assert clean_entry(GCIDE_ENTRY, prose.SOURCES[0]) == GCIDE_TEXT


def test_reflow_joins_deeper_lines_or_flush_paragraphs():
    wordnet = ["abandon", "    n 1: the trait of lacking", "         restraint", "    2: a feeling"]
    assert reflow(wordnet, headword_alone=True) == ("abandon\nn 1: the trait of lacking "
                                                    "restraint\n2: a feeling")
    flush = ["   A detailed sequence", "   of actions.", "", "   Second paragraph."]
    assert reflow(flush, flush=True) == "A detailed sequence of actions.\n\nSecond paragraph."
    assert reflow(flush) == "A detailed sequence\nof actions.\n\nSecond paragraph."


def test_dictd_source_reads_one_document_per_headword(tmp_path):
    base = write_dictd(tmp_path / "gcide", [
        (["00-database-short"], "A test dictionary\n"),
        (["Abandon"], GCIDE_ENTRY),
        (["abandon"], "Abandon \\A*ban\"don\\, n.\n   Abandonment. [Obs.]\n   [1913 Webster]\n"),
        (["Zebra"], 'Zebra \\Ze"bra\\, n.\n   A striped {horse}.\n')])
    documents = list(prose.read_dictd(Source("gcide", "dict-gcide", "dictd", base), False))
    assert [d.key for d in documents] == ["abandon", "zebra"]
    assert documents[0].text == GCIDE_TEXT + "\n\nAbandon, n. Abandonment. [Obs.]"
    assert documents[1].text == "Zebra, n. A striped horse."


def test_deduplication_drops_repeated_documents_and_long_paragraphs():
    long = "A paragraph long enough to count as shared text between documents. " * 2
    documents = [Document("a", "k1", f"first\n\n{long}"), Document("a", "k2", f"first\n\n{long}"),
                 Document("b", "k3", f"short\n\n{long}\n\nown text"),
                 Document("b", "k4", long), Document("b", "k5", "first")]
    kept, documents_dropped, paragraphs_dropped = deduplicate(documents)
    # k2 repeats k1; k3 keeps its short and own paragraphs; k4 is nothing but a repeat; "first"
    # alone is short, so k5 stays
    assert [(d.key, d.text) for d in kept] == [("k1", f"first\n\n{long}"),
                                               ("k3", "short\n\nown text"), ("k5", "first")]
    assert documents_dropped == {"a": 1, "b": 1}
    assert paragraphs_dropped == {"a": 0, "b": 2}


def test_split_is_by_key_hash_alone_disjoint_and_near_its_fractions():
    keys = [f"word{i}" for i in range(20_000)]
    splits = [split_of(key) for key in keys]
    assert splits == [split_of(key) for key in keys]  # the same on every call
    for name, fraction in (("dev", prose.DEV_FRACTION), ("test", prose.TEST_FRACTION)):
        assert splits.count(name) == pytest.approx(fraction * len(keys), rel=0.15)
    documents = [Document("gcide" if i % 2 else "wn", key, f"text {i}")
                 for i, key in enumerate(keys)]
    parts = prose.split_prose(documents, {}, {})
    # every document in exactly one split, in source order; one order-independent rule
    assert sorted(d.key for part in (parts.train, parts.dev, parts.test) for d in part) == \
        sorted(keys)
    assert [d.key for d in parts.dev] == [k for k, s in zip(keys, splits) if s == "dev"]
    alone = prose.split_prose(documents[::-1][:5000], {}, {})
    assert {d.key for d in alone.test} == {d.key for d in parts.test} & set(keys[-5000:])
    # the same headword in two dictionaries lands in the same split
    same = prose.split_prose([Document("gcide", "dev-word", "a"), Document("wn", "dev-word", "b")]
                             + documents, {}, {})
    assert sum(d.key == "dev-word" for d in getattr(same, split_of("dev-word"))) == 2


@pytest.fixture
def sources(tmp_path) -> tuple[Source, ...]:
    """Two small dictionaries (one repeating an entry of the other) and a folder of pages."""
    words = [f"{w}{i}" for i in range(300) for w in ("ard", "bel")]
    first = write_dictd(tmp_path / "one", [([word], f"{word}\n   the meaning of {word} is "
                                                    f"word number {i}\n")
                                           for i, word in enumerate(words)])
    second = write_dictd(tmp_path / "two", [(["ard0"], "ard0\n   the meaning of ard0 is word "
                                                        "number 0\n"),
                                            (["zed"], "zed\n   the last letter\n")])
    pages = tmp_path / "html"
    (pages / "skip").mkdir(parents=True)
    for name in ("intro", "guide", "skip/away"):
        (pages / f"{name}.html").write_text(f'<div role="main"><p>The {name} page.</p></div>')
    return (Source("wn", "dict-one", "dictd", first, headword_alone=True),
            Source("foldoc", "dict-two", "dictd", second, headword_alone=True),
            Source("pages", "pages-doc", "sphinx", pages, skipped=("skip/",)))


def test_load_prose_builds_caches_and_dedupes_across_sources(sources, tmp_path):
    splits = load_prose(tmp_path / "cache", sources=sources)
    documents = splits.train + splits.dev + splits.test
    assert len(documents) == 600 + 1 + 2  # ard0 of the second dictionary repeats the first's
    assert splits.dropped_documents == {"wn": 0, "foldoc": 1, "pages": 0}
    assert {d.key for d in documents if d.source == "pages"} == {"pages:intro.html",
                                                                 "pages:guide.html"}
    assert all(split_of(d.key) == name for name in ("train", "dev", "test")
               for d in getattr(splits, name))
    again = load_prose(tmp_path / "cache", sources=sources)  # from the cache
    assert (again.train, again.dev, again.test) == (splits.train, splits.dev, splits.test)


def test_missing_packages_are_named_with_the_install_command(sources, tmp_path):
    absent = Source("gcide", "dict-gcide", "dictd", tmp_path / "nowhere" / "gcide")
    with pytest.raises(DataError, match=r"missing: dict-gcide \(no .*gcide.index\); install "
                                        r"them: apt-get install dict-gcide$"):
        load_prose(tmp_path / "cache", sources=(absent, *sources))


def test_tokenizers_at_every_vocabulary_learn_from_the_train_split_only(sources, tmp_path):
    splits = load_prose(tmp_path / "cache", sources=sources)
    test_only = "qqxjvv"  # a string in the test split alone, repeated: BPE would merge it
    corpus = Corpus("fixture", [d.text for d in splits.train], [d.text for d in splits.dev],
                    [d.text + f" {test_only}" * 50 for d in splits.test])
    for vocab_size in (300, 400, 600):
        bpe = load_or_train_tokenizer(corpus, vocab_size, tmp_path / "cache")
        merged = [token for token in bpe.tokenizer.get_vocab() if len(token) > 1]
        assert merged and not any("qq" in token or "xj" in token for token in merged)
        assert any("meaning" in token or "ard" in token for token in merged)


def test_eval_split_test_needs_a_corpus_with_a_test_split(corpus, cache):
    with pytest.raises(DataError, match="has no test split"):
        prepare_text_data(corpus, 300, cache, progress=False, eval_split="test")


# --- Debian's packages ---------------------------------------------------------------------------

MISSING = [source.package for source in prose.SOURCES if not source.present()]
needs_packages = pytest.mark.skipif(
    bool(MISSING), reason=f"the prose corpus needs Debian packages not installed here: "
                          f"{' '.join(MISSING)} (apt-get install them; .ci/run does)")


@needs_packages
def test_prose_corpus_has_three_disjoint_splits_of_enough_text():
    corpus = load_corpus("prose", prose.default_cache_dir())
    assert len(corpus.train) > 200_000 and corpus.val and corpus.test
    assert not set(corpus.train) & set(corpus.val) and not set(corpus.val) & set(corpus.test)
    assert sum(map(len, corpus.train)) > 80_000_000


def skip_unless_this_build_is_documented() -> str:
    """docs/corpora.md's text, or a skip where it documents other package versions than these."""
    page = (REPO / "docs" / "corpora.md").read_text()
    installed = prose.versions_text(prose.package_versions())
    if installed not in page:
        pytest.skip(f"docs/corpora.md documents another build of the packages than this "
                    f"machine's ({installed}); `python -m movelab.data.prose` prints the tables "
                    f"of this one")
    return page


@needs_packages
def test_documented_composition_is_what_the_code_builds():
    """Exact, where the documented package versions are installed: Debian updates some of them
    within a release, and the corpus changes with them (docs/corpora.md, 'Builds')."""
    page = skip_unless_this_build_is_documented()
    corpus = load_corpus("prose", prose.default_cache_dir())
    line = prose.build_line(prose.package_versions(), corpus.content_hash)
    assert line in page, f"same packages, another corpus: docs/corpora.md should say\n{line}"
    stats = prose.composition(4096)
    train = prepare_text_data("prose", 4096, progress=False)
    assert sum(row["train_tokens"] for row in stats["sources"].values()) == len(train.train_tokens)
    assert len(train.train_tokens) >= 20_000_000
    for table in (prose.composition_table(stats), prose.split_table(stats)):
        assert table in page, f"docs/corpora.md is out of date; paste in:\n{table}"
    assert re.search(r"\| 4096 \| [\d.]+ \| [\d,]+ \| [\d,]+ \| [\d.]+ \|", page)
