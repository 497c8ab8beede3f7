"""The default `wiki` corpus (gensim's Wikipedia sample), parsed once for this module (~15 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import movelab
from movelab.data import load_corpus, prepare_text_data
from movelab.data import corpus as corpus_module

ARTICLES_IN_SAMPLE = 106  # main-namespace pages of the dump that are not redirects
MARKUP = ("[[", "]]", "{{", "}}", "<ref", "</", "{|", "|}", "thumb|", "&nbsp;", "''")


@pytest.fixture(scope="module")
def wiki_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("wiki-cache")


@pytest.fixture(scope="module")
def wiki(wiki_cache):
    return load_corpus("wiki", wiki_cache)


def test_wiki_is_the_sample_articles_split_by_article(wiki):
    articles = wiki.train + wiki.val
    assert len(articles) == len(set(articles)) == ARTICLES_IN_SAMPLE
    assert 0.05 <= len(wiki.val) / len(articles) <= 0.10
    assert set(wiki.train).isdisjoint(wiki.val)
    assert sum(map(len, articles)) > 2_500_000
    assert any(text.startswith("Anarchism is a political philosophy") for text in articles)


def test_wiki_text_has_no_markup_left(wiki):
    for text in wiki.train + wiki.val:
        assert not [marker for marker in MARKUP if marker in text], text[:80]
        assert "\n\n\n" not in text and text == text.strip()


def test_wiki_is_read_from_the_cache_with_the_same_split(wiki, wiki_cache, monkeypatch):
    def parse(markup):
        raise AssertionError("parsed again although cached")
    monkeypatch.setattr(corpus_module, "wiki_to_text", parse)
    again = load_corpus("wiki", wiki_cache)
    assert (again.train, again.val, again.content_hash) == (wiki.train, wiki.val,
                                                           wiki.content_hash)


def test_wiki_split_and_hash_do_not_depend_on_the_process(wiki, wiki_cache):
    script = ("import json, sys; from pathlib import Path; from movelab.data import load_corpus; "
              "c = load_corpus('wiki', Path(sys.argv[1])); "
              "print(json.dumps([c.content_hash, c.val]))")
    result = subprocess.run([sys.executable, "-c", script, str(wiki_cache)], check=True,
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "12345",
                                 "PYTHONPATH": str(Path(movelab.__file__).parents[1])})
    assert json.loads(result.stdout) == [wiki.content_hash, wiki.val]


def test_wiki_text_round_trips_through_the_tokenizer(wiki, wiki_cache):
    data = prepare_text_data("wiki", 512, wiki_cache, progress=False)
    text = "\n\n".join(wiki.val)
    assert sum(ord(character) > 127 for character in text) > 100
    ids = data.tokenizer.encode(text).ids
    assert data.tokenizer.decode(ids) == text
    assert data.token_bytes[ids].sum() == len(text.encode("utf-8"))
    described = data.describe()
    assert described["trained_vocab_size"] == described["vocab_size"] == 512
    assert 1.5 < described["bytes_per_token"] < 4.0
    assert np.asarray(data.train_tokens).max() < 512
