"""Corpora: the split, text:PATH, fineweb-edu parquet, wiki markup cleaning, DataError messages."""

import importlib.util
import sys

import pytest

from movelab.data import DataError, load_corpus
from movelab.data.corpus import (VAL_FRACTION, normalize_document, split_documents,
                                 strip_wiki_markup)


def write_documents(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    texts = {f"doc{i:02d}.txt": f"Document {i} starts here.\n\nIts second paragraph, número {i}."
             for i in range(count)}
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return texts


def test_split_takes_the_lowest_hashing_keys_whatever_the_order():
    keyed = [(f"title {i}", f"text {i}") for i in range(200)]
    train, val = split_documents(keyed)
    assert len(val) == round(VAL_FRACTION * 200)
    assert sorted(train + val) == sorted(text for _, text in keyed)
    train_reversed, val_reversed = split_documents(keyed[::-1])
    assert set(val_reversed) == set(val)
    assert train == [text for _, text in keyed if text not in set(val)]  # source order kept


def test_split_needs_two_documents():
    assert split_documents([("a", "a"), ("b", "b")])[1] != []
    with pytest.raises(DataError, match="at least 2 documents"):
        split_documents([("only", "only")])


def test_text_folder_gives_one_document_per_txt_or_md_file(tmp_path):
    texts = write_documents(tmp_path / "docs", 30)
    (tmp_path / "docs" / "nested").mkdir()
    notes = "# Notes\r\nline one  \r\n\r\n\r\n\r\nend"
    (tmp_path / "docs" / "nested" / "notes.md").write_text(notes)
    (tmp_path / "docs" / "table.csv").write_text("a,b\n1,2\n")
    corpus = load_corpus(f"text:{tmp_path / 'docs'}", tmp_path / "cache")
    documents = corpus.train + corpus.val
    assert sorted(documents) == sorted([*texts.values(), "# Notes\nline one\n\nend"])
    assert set(corpus.train).isdisjoint(corpus.val) and corpus.val
    again = load_corpus(f"text:{tmp_path / 'docs'}", tmp_path / "cache")
    assert (again.train, again.val, again.content_hash) == (corpus.train, corpus.val,
                                                           corpus.content_hash)


def test_content_hash_changes_with_the_text(tmp_path):
    write_documents(tmp_path / "docs", 10)
    before = load_corpus(f"text:{tmp_path / 'docs'}", tmp_path).content_hash
    (tmp_path / "docs" / "doc03.txt").write_text("Changed.")
    assert load_corpus(f"text:{tmp_path / 'docs'}", tmp_path).content_hash != before


def test_text_file_is_split_into_paragraph_documents(tmp_path):
    paragraphs = [f"Paragraph {i}, line one.\nLine two of {i}." for i in range(40)]
    (tmp_path / "book.txt").write_text("\n\n \n".join(paragraphs) + "\n", encoding="utf-8")
    corpus = load_corpus(f"text:{tmp_path / 'book.txt'}", tmp_path)
    assert sorted(corpus.train + corpus.val) == sorted(paragraphs)
    assert len(corpus.val) == round(VAL_FRACTION * 40)


def test_missing_text_path_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="does not exist; give text:PATH with an existing"):
        load_corpus(f"text:{tmp_path / 'missing'}", tmp_path)


def test_text_folder_without_documents_is_refused(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="without .txt or .md files"):
        load_corpus(f"text:{tmp_path}", tmp_path / "cache")


def test_text_that_is_not_utf8_is_refused(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café\n\nthé".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt is not UTF-8 text"):
        load_corpus(f"text:{tmp_path / 'latin1.txt'}", tmp_path)


def test_unknown_spec_lists_the_valid_ones(tmp_path):
    with pytest.raises(DataError, match="wiki, text:PATH, fineweb-edu, fineweb-edu:PATH"):
        load_corpus("wikipedia", tmp_path)
    with pytest.raises(DataError, match="unknown corpus 'text:'"):
        load_corpus("text:", tmp_path)


def test_wiki_without_gensim_says_pip_install_gensim(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(DataError, match="pip install gensim"):
        load_corpus("wiki", tmp_path)


def test_normalize_document():
    assert normalize_document("  a  \r\nb\t\n\n\n\n\nc\n\n") == "a\nb\n\nc"


def test_wiki_markup_becomes_plain_text():
    markup = ("'''Foo''' is a [[bar|baz]] in ''italics''.<ref>{{cite web|url=x|title=y}}</ref>\n"
              "[[File:Foo.jpg|thumb|A [[caption]] with a link.]]\n"
              "{| class=\"wikitable\"\n! head\n|-\n| cell || cell\n|}\n"
              "Alaska ({{IPAc-en|ə|ˈ|l|æ|s|k|ə}}) is big.\n"
              "{{Infobox thing|name=Foo}}\n\n\n\n== History ==\nOld.\n[[Category:Things]]")
    assert strip_wiki_markup(markup) == ("Foo is a baz in italics.\n\nAlaska is big.\n\n"
                                         "History\nOld.")


# --- fineweb-edu ---------------------------------------------------------------------------------

def write_parquet(path, columns):
    pyarrow = pytest.importorskip("pyarrow", reason="pyarrow not installed: pip install pyarrow")
    import pyarrow.parquet
    pyarrow.parquet.write_table(pyarrow.table(columns), path)


def fineweb_texts(count, start=0):
    return [f"Web page {i}.\nIt teaches fractions, step {i}, with care.  \n"
            for i in range(start, start + count)]


def fineweb_columns(count, start=0):
    return {"text": fineweb_texts(count, start),
            "id": [f"<urn:uuid:{i}>" for i in range(start, start + count)]}


def test_fineweb_parquet_file_is_read_up_to_max_docs(tmp_path):
    write_parquet(tmp_path / "shard.parquet", fineweb_columns(50))
    corpus = load_corpus(f"fineweb-edu:{tmp_path / 'shard.parquet'}", tmp_path, max_docs=30)
    expected = [normalize_document(text) for text in fineweb_texts(30)]
    assert sorted(corpus.train + corpus.val) == sorted(expected)
    assert len(corpus.val) == round(VAL_FRACTION * 30)
    assert corpus.train == [text for text in expected if text not in corpus.val]


def test_fineweb_folder_reads_shards_in_path_order(tmp_path):
    (tmp_path / "sample" / "10BT").mkdir(parents=True)
    write_parquet(tmp_path / "sample" / "10BT" / "001.parquet", fineweb_columns(20, start=20))
    write_parquet(tmp_path / "sample" / "10BT" / "000.parquet", fineweb_columns(20))
    corpus = load_corpus(f"fineweb-edu:{tmp_path}", tmp_path / "cache", max_docs=25)
    expected = [normalize_document(text) for text in fineweb_texts(25)]
    assert sorted(corpus.train + corpus.val) == sorted(expected)


def test_fineweb_shards_without_text_column_or_not_parquet_are_refused(tmp_path):
    write_parquet(tmp_path / "other.parquet", {"content": ["x"]})
    with pytest.raises(DataError, match="no `text` column"):
        load_corpus(f"fineweb-edu:{tmp_path / 'other.parquet'}", tmp_path)
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read .*fake.parquet as parquet"):
        load_corpus(f"fineweb-edu:{tmp_path / 'fake.parquet'}", tmp_path)


def test_fineweb_missing_sources_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(f"fineweb-edu:{tmp_path / 'nowhere'}", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \*.parquet files; download a shard into it: hf "):
        load_corpus(f"fineweb-edu:{tmp_path / 'empty'}", tmp_path)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(DataError, match="pip install datasets pyarrow, or pass fineweb-edu:DIR"):
        load_corpus("fineweb-edu", tmp_path)
    (tmp_path / "shard.parquet").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(DataError, match="needs pyarrow: pip install pyarrow"):
        load_corpus(f"fineweb-edu:{tmp_path / 'shard.parquet'}", tmp_path)
