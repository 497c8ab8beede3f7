"""The `pydocs` corpus: Sphinx HTML pages to plain text, on pages written here and on Debian's
python3.11-doc package when it is installed."""

import shutil

import pytest

from movelab.data import DataError, load_corpus
from movelab.data import corpus as corpus_module
from movelab.data.corpus import PYDOCS_DIR, VAL_FRACTION, html_main_text, pydocs_pages

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8" /><title>Page &#8212; Python documentation</title>
<script src="_static/doctools.js"></script><style>body {{ color: black }}</style></head>
<body>
<div class="related" role="navigation"><h3>Navigation</h3>
<ul><li><a href="genindex.html">index</a> |</li></ul></div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper">
<div class="body" role="main">
{body}
</div></div></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><ul><li>Sidebar</li></ul>
</div></div>
<div class="footer">&copy; Copyright 2001, Python Software Foundation.<br />Last updated.</div>
</body></html>
"""

BODY = """<section id="strings"><span id="tut-strings"></span>
<h1><span class="section-number">3.1. </span>Strings &amp; bytes<a class="headerlink"
 href="#strings" title="Permalink to this heading">¶</a></h1>
<p>Strings are enclosed in single quotes (<code class="docutils literal notranslate"><span
 class="pre">'...'</span></code>)
   or double quotes&nbsp;&#8212; the result is the same.</p>
<div class="admonition note"><p class="admonition-title">Note</p><p>A nested block.</p></div>
<div class="highlight-python3 notranslate"><div class="highlight"><pre><span></span><span
 class="gp">&gt;&gt;&gt; </span><span class="k">if</span> x &lt; 0:
<span class="gp">... </span>    print(&#39;negative&#39;)
</pre></div></div>
<script>var hidden = "a script in the body";</script>
<div class="toctree-wrapper compound"><ul><li><a href="sub.html">A subpage</a></li></ul></div>
<table class="docutils"><tr><th><p>Operation</p></th><th><p>Result</p></th></tr>
<tr><td><p><code>x or y</code></p></td><td><p>if <em>x</em> is false, then <em>y</em></p></td></tr>
</table>
<ul><li>first item</li><li>second item</li></ul>
<p>Text after the nested blocks is still body text.</p>
</section>"""

BODY_TEXT = """3.1. Strings & bytes

Strings are enclosed in single quotes ('...') or double quotes \u2014 the result is the same.

Note

A nested block.

>>> if x < 0:
...     print('negative')

Operation | Result
x or y | if x is false, then y

first item
second item

Text after the nested blocks is still body text."""

INDEX_PAGES = ("genindex.html", "genindex-A.html", "py-modindex.html", "search.html")


def write_pages(folder, count):
    """index.html (the page above), `count` short library pages and the index and search pages;
    returns {relative path: expected text} of the pages that are documents."""
    bodies = {"index.html": (BODY, BODY_TEXT)}
    bodies |= {f"library/mod{i:02d}.html": (f"<p>Module {i} does things, &lt;{i}&gt;.</p>",
                                            f"Module {i} does things, <{i}>.")
               for i in range(count)}
    bodies |= {page: ("<p>Index entry</p>", None) for page in INDEX_PAGES}
    (folder / "library").mkdir(parents=True)
    for page, (body, _) in bodies.items():
        (folder / page).write_text(PAGE.format(body=body), encoding="utf-8")
    return {page: text for page, (_, text) in bodies.items() if text}


def test_page_text_is_the_main_element_with_its_code():
    assert html_main_text(PAGE.format(body=BODY)) == BODY_TEXT


def test_folder_gives_one_document_per_page_split_by_path(tmp_path):
    texts = write_pages(tmp_path / "html", 24)
    corpus = load_corpus(f"pydocs:{tmp_path / 'html'}", tmp_path / "cache")
    assert sorted(corpus.train + corpus.val) == sorted(texts.values())
    assert len(corpus.val) == round(VAL_FRACTION * len(texts))
    assert corpus.train == [text for text in texts.values() if text not in corpus.val]
    shutil.copytree(tmp_path / "html", tmp_path / "elsewhere" / "html")
    moved = load_corpus(f"pydocs:{tmp_path / 'elsewhere' / 'html'}", tmp_path / "cache2")
    assert (moved.train, moved.val, moved.content_hash) == (corpus.train, corpus.val,
                                                           corpus.content_hash)


def test_pages_are_read_from_the_cache_until_one_changes(tmp_path, monkeypatch):
    write_pages(tmp_path / "html", 4)
    corpus = load_corpus(f"pydocs:{tmp_path / 'html'}", tmp_path / "cache")

    def parse(html):
        raise AssertionError("parsed again although cached")
    monkeypatch.setattr(corpus_module, "html_main_text", parse)
    again = load_corpus(f"pydocs:{tmp_path / 'html'}", tmp_path / "cache")
    assert again.content_hash == corpus.content_hash
    monkeypatch.undo()
    (tmp_path / "html" / "library" / "mod02.html").write_text(PAGE.format(body="<p>New.</p>"))
    changed = load_corpus(f"pydocs:{tmp_path / 'html'}", tmp_path / "cache")
    assert "New." in changed.train + changed.val


def test_missing_pages_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "PYDOCS_DIR", tmp_path / "not-installed")
    with pytest.raises(DataError, match="apt-get install python3.11-doc, or give pydocs:PATH"):
        load_corpus("pydocs", tmp_path)
    with pytest.raises(DataError, match="is not a folder; give pydocs:PATH with a folder of HTML"):
        load_corpus(f"pydocs:{tmp_path / 'nowhere'}", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no .html pages"):
        load_corpus(f"pydocs:{tmp_path / 'empty'}", tmp_path)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "page.html").write_text("<html><body><p>No main element.</p></body>")
    with pytest.raises(DataError, match='no page in .* has text in an element with role="main"'):
        load_corpus(f"pydocs:{tmp_path / 'plain'}", tmp_path)


# --- the installed package ----------------------------------------------------------------------

needs_package = pytest.mark.skipif(not PYDOCS_DIR.is_dir(),
                                   reason=f"python3.11-doc is not installed (no {PYDOCS_DIR}): "
                                          "apt-get install python3.11-doc")


@needs_package
def test_package_has_its_pages_without_the_indexes():
    pages = pydocs_pages(PYDOCS_DIR)
    assert len(pages) == 498  # python3.11-doc 3.11.2 (Debian 12): 530 pages less 32 index/search
    assert {"index.html", "tutorial/index.html", "library/json.html"} <= set(pages)
    assert not [page for page in pages if "genindex" in page or "modindex" in page]


@needs_package
def test_package_tutorial_reads_as_text_and_code(tmp_path):
    tutorial = load_corpus(f"pydocs:{PYDOCS_DIR / 'tutorial'}", tmp_path)
    pages = tutorial.train + tutorial.val
    assert len(pages) == 17
    text = "\n\n".join(pages)
    assert "Python is an easy to learn, powerful programming language." in text
    assert ">>> for w in words:\n...     print(w, len(w))" in text
    assert not [marker for marker in ("¶", "<span", "&gt;", "Quick search") if marker in text]
