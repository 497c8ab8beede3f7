"""Text corpora behind one interface: `load_corpus(spec, cache_dir)` -> Corpus of train/val texts.

Specs:
  wiki              the 106 English Wikipedia articles inside gensim's wheel (the offline default)
  text:PATH         a folder of .txt/.md files, one document per file (searched recursively), or one
                    text file, split into documents at blank lines (each paragraph is a document)
  fineweb-edu       FineWeb-Edu (sample-10BT), the first `max_docs` documents streamed from the
                    Hugging Face hub and cached
  fineweb-edu:PATH  local FineWeb-Edu parquet shards (one file, or a folder searched recursively
                    for *.parquet; `text` column), the first `max_docs` documents in path order
  pydocs            the Python 3.11 documentation of Debian's python3.11-doc package (HTML pages
                    under /usr/share/doc/python3.11/html), one document per page, code included
  pydocs:PATH       a folder of Sphinx HTML pages (searched recursively), one document per page
  prose             English dictionaries and documentation from Debian packages (GCIDE, WordNet,
                    FOLDOC, the Jargon File, The Devil's Dictionary, the Linux kernel's and
                    Python's documentation), deduplicated, with a test split besides train and
                    validation (dev); movelab.data.prose says how it is built and split
  recall:K=N        not text: the synthetic positive control of the slot axis (movelab.data.recall),
                    token ids generated in process; prepare_text_data serves it, load_corpus does not

Every document gets the same light normalisation (line ends, trailing spaces, runs of blank lines).
The split is by whole document and the same on every run: the VAL_FRACTION (or a run's
TrainConfig.val_fraction) of documents whose key
(wiki: the title; a folder: the file's relative path; otherwise the text itself) hashes lowest go to
validation. Documents keep their source order within each split. (`prose` has its own three-way
split, by headword or page.)
"""

from __future__ import annotations

import bz2
import hashlib
import importlib.util
import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import islice
from pathlib import Path

import mwparserfromhell
from tqdm import tqdm

from movelab.data.cache import write_json_atomically
from movelab.data.errors import DataError
from movelab.hashing import DATA_DIGITS, content_hash

VAL_FRACTION = 0.08
FINEWEB_MAX_DOCS = 10_000
FINEWEB_REPO, FINEWEB_CONFIG = "HuggingFaceFW/fineweb-edu", "sample-10BT"
FINEWEB_DOWNLOAD = (f"hf download {FINEWEB_REPO} --repo-type dataset "
                    "--include 'sample/10BT/000_*.parquet' --local-dir DIR")  # ~2 GB, one shard
TEXT_SUFFIXES = {".txt", ".md"}
SPECS = "wiki, text:PATH, fineweb-edu, fineweb-edu:PATH, pydocs, pydocs:PATH, prose, recall:K=N"
RECALL_PREFIX = "recall:"


def is_recall_spec(spec: str) -> bool:
    """The synthetic recall corpus (movelab.data.recall), which has no documents."""
    return spec.startswith(RECALL_PREFIX)

WIKI_SAMPLE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
WIKI_CLEANING_VERSION = 2  # bump when the cleaning below changes, so cached articles are re-parsed
WIKI_DROPPED_TAGS = {"ref", "references", "table", "gallery", "math", "timeline", "imagemap",
                     "score", "syntaxhighlight", "source"}
WIKI_NON_TEXT_LINKS = ("file:", "image:", "media:", "category:")
TABLE_MARKUP_LINE = re.compile(r"^(\{\||\|\}|\||!)")
EMPTY_PARENTHESES = re.compile(r" ?\([\s,;]*\)")  # left where a template (e.g. a pronunciation) was
UNPAIRED_EMPHASIS = re.compile(r"'{2,}")  # '' or ''' whose partner the parser did not find
SPACE_RUN = re.compile(r"[ \t]{2,}")
BLANK_LINE_RUN = re.compile(r"\n{3,}")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")

PYDOCS_PACKAGE = "python3.11-doc"
PYDOCS_DIR = Path("/usr/share/doc/python3.11/html")  # where that Debian package puts the pages
PYDOCS_CLEANING_VERSION = 1  # bump when the HTML-to-text conversion below changes
PYDOCS_SKIPPED_PAGES = re.compile(r"genindex.*|py-modindex|search")  # file stems: no running text
PYDOCS_DROPPED_TAGS = {"script", "style", "nav"}  # nav: a page's local table of contents
PYDOCS_DROPPED_CLASSES = {"headerlink", "toctree-wrapper"}  # the ¶ permalinks, lists of subpages
PYDOCS_PARAGRAPH_TAGS = {"p", "pre", "div", "section", "aside", "blockquote", "table", "ul", "ol",
                         "dl", "h1", "h2", "h3", "h4", "h5", "h6"}
PYDOCS_LINE_TAGS = {"br", "li", "dt", "dd", "tr"}
PYDOCS_CELL_TAGS = {"td", "th"}
SEPARATORS = ("", " ", " | ", "\n", "\n\n")  # weakest first: of those waiting, the strongest wins
WHITESPACE_RUN = re.compile(r"\s+")


@dataclass
class Corpus:
    name: str
    train: list[str]
    val: list[str]  # the dev split: for every choice (learning rates, recipes)
    test: list[str] = field(default_factory=list)  # held out for claims; only some corpora have it
    content_hash: str = field(init=False)  # sha256 prefix of the documents of every split

    def __post_init__(self) -> None:
        splits = [self.train, self.val] + ([self.test] if self.test else [])  # as before tests
        self.content_hash = content_hash([json.dumps(splits, ensure_ascii=False)], DATA_DIGITS)


def load_corpus(spec: str, cache_dir: Path, *, max_docs: int = FINEWEB_MAX_DOCS,
                progress: bool = False, val_fraction: float = VAL_FRACTION) -> Corpus:
    """The corpus `spec` names (see the module doc); slow sources are cached under cache_dir."""
    kind, has_path, path = spec.partition(":")
    if is_recall_spec(spec):
        raise DataError(f"{spec} is a synthetic token corpus without documents; "
                        "prepare_text_data (and every movelab command) generates it")
    if kind == "wiki" and not has_path:
        return Corpus(spec, *split_documents(load_wiki_articles(Path(cache_dir), progress),
                                             val_fraction))
    if kind == "text" and path:
        return Corpus(spec, *split_documents(read_text_documents(Path(path).expanduser()),
                                             val_fraction))
    if kind == "pydocs":
        pages = load_pydocs_pages(pydocs_folder(path), Path(cache_dir), progress)
        return Corpus(spec, *split_documents(pages, val_fraction))
    if kind == "prose" and not has_path:
        from movelab.data.prose import load_prose  # it builds on this module's HTML reader

        splits = load_prose(Path(cache_dir), progress)
        return Corpus(spec, *([d.text for d in part] for part in (splits.train, splits.dev,
                                                                    splits.test)))
    if kind == "fineweb-edu":
        if path:
            texts = read_parquet_texts(Path(path).expanduser(), max_docs)
        else:
            texts = load_streamed_fineweb(Path(cache_dir), max_docs, progress)
        documents = [document for document in map(normalize_document, texts) if document]
        return Corpus(spec, *split_documents([(document, document) for document in documents],
                                             val_fraction))
    raise DataError(f"unknown corpus {spec!r}; use one of: {SPECS}")


def split_documents(keyed_documents: list[tuple[str, str]],
                    val_fraction: float = VAL_FRACTION) -> tuple[list[str], list[str]]:
    """(train, val) from (key, document) pairs: the val_fraction of documents whose keys hash
    lowest (at least one) go to validation, whatever order the pairs come in."""
    if len(keyed_documents) < 2:
        raise DataError(f"a corpus needs at least 2 documents to split into train and validation, "
                        f"this one has {len(keyed_documents)}; give it more text")
    val_count = max(1, round(val_fraction * len(keyed_documents)))
    by_hash = sorted(keyed_documents, key=lambda pair: hashlib.sha256(pair[0].encode()).digest())
    val_keys = {key for key, _ in by_hash[:val_count]}
    train = [document for key, document in keyed_documents if key not in val_keys]
    val = [document for key, document in keyed_documents if key in val_keys]
    return train, val


def normalize_document(text: str) -> str:
    """Unix line ends, no trailing spaces, at most one blank line in a row, no outer whitespace."""
    lines = (line.rstrip() for line in text.splitlines())
    return BLANK_LINE_RUN.sub("\n\n", "\n".join(lines)).strip()


# --- wiki --------------------------------------------------------------------------------------

def wiki_dump_path() -> Path:
    """The Wikipedia sample in gensim's installed package, found without importing gensim."""
    gensim = importlib.util.find_spec("gensim")
    if gensim is None or not gensim.submodule_search_locations:
        raise DataError("the `wiki` corpus is the Wikipedia sample inside the gensim package, "
                        "which is not installed: pip install gensim (or choose text:PATH or "
                        "fineweb-edu)")
    path = Path(next(iter(gensim.submodule_search_locations))) / WIKI_SAMPLE
    if not path.is_file():
        raise DataError(f"gensim is installed but its Wikipedia sample is missing ({path}); "
                        "reinstall it: pip install --force-reinstall gensim")
    return path


def load_wiki_articles(cache_dir: Path, progress: bool) -> list[tuple[str, str]]:
    """(title, plain text) of every article in the dump; parsed once, then read from the cache."""
    dump = wiki_dump_path()
    dump_hash = content_hash([dump.read_bytes()])
    cached = cache_dir / "corpora" / f"wiki-{dump_hash}-clean{WIKI_CLEANING_VERSION}.json"
    if cached.is_file():
        return [(title, text) for title, text in json.loads(cached.read_text(encoding="utf-8"))]
    pages = list(iter_wiki_articles(dump))
    cleaned = ((title, wiki_to_text(markup))
               for title, markup in tqdm(pages, desc="cleaning wiki articles", unit="article",
                                         disable=not progress))
    articles = [(title, text) for title, text in cleaned if text]
    write_json_atomically(cached, articles)
    return articles


def iter_wiki_articles(dump: Path) -> Iterator[tuple[str, str]]:
    """(title, wiki markup) of the article pages of a MediaWiki XML dump, redirects left out."""
    with bz2.open(dump) as xml:
        for _, element in ElementTree.iterparse(xml):
            if element.tag.rpartition("}")[2] != "page":
                continue
            if element.findtext("{*}ns") == "0" and element.find("{*}redirect") is None:
                yield element.findtext("{*}title"), element.findtext("{*}revision/{*}text") or ""
            element.clear()


def wiki_to_text(markup: str) -> str:
    """Plain article text. Parsed twice: mwparserfromhell keeps markup it cannot parse (some deeply
    nested constructs) as literal text, and parsing that output again strips it."""
    for _ in range(2):
        markup = strip_wiki_markup(markup)
    return markup


def strip_wiki_markup(markup: str) -> str:
    """One pass: drop the tags and links that hold no running text, let mwparserfromhell strip the
    rest, then remove what that leaves behind (table rows, empty parentheses, stray quotes)."""
    wikicode = mwparserfromhell.parse(markup)
    for tag in wikicode.filter_tags(wikicode.RECURSE_OTHERS, matches=is_dropped_tag):
        wikicode.remove(tag)
    for link in wikicode.filter_wikilinks(wikicode.RECURSE_OTHERS, matches=is_non_text_link):
        wikicode.remove(link)
    text = wikicode.strip_code(normalize=True, collapse=True)
    lines = (tidy_wiki_line(line) for line in text.splitlines())
    return normalize_document("\n".join(line for line in lines
                                         if not TABLE_MARKUP_LINE.match(line)))


def tidy_wiki_line(line: str) -> str:
    line = SPACE_RUN.sub(" ", UNPAIRED_EMPHASIS.sub("", line))
    return EMPTY_PARENTHESES.sub("", line).strip()


def is_dropped_tag(tag) -> bool:
    """References, tables, galleries, formulas and the like: no running text."""
    return str(tag.tag).strip().lower() in WIKI_DROPPED_TAGS


def is_non_text_link(link) -> bool:
    """Images, media and category links (an image's caption goes with it)."""
    return str(link.title).strip().lower().startswith(WIKI_NON_TEXT_LINKS)


# --- text:PATH ---------------------------------------------------------------------------------

def read_text_documents(path: Path) -> list[tuple[str, str]]:
    """(key, document) pairs: a folder's files keyed by relative path, or a file's paragraphs."""
    if path.is_dir():
        files = sorted(file for file in path.rglob("*")
                       if file.is_file() and file.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise DataError(f"text:{path} is a folder without .txt or .md files; put the documents "
                            "there, one per file")
        documents = [(file.relative_to(path).as_posix(), normalize_document(read_utf8(file)))
                     for file in files]
        return [(key, document) for key, document in documents if document]
    if path.is_file():
        paragraphs = map(normalize_document, PARAGRAPH_BREAK.split(read_utf8(path)))
        return [(paragraph, paragraph) for paragraph in paragraphs if paragraph]
    raise DataError(f"text:{path} does not exist; give text:PATH with an existing .txt/.md file or "
                    "a folder of them")


def read_utf8(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{file} is not UTF-8 text ({error.reason} at byte {error.start}); "
                        "convert it to UTF-8 or leave it out") from None


# --- fineweb-edu -------------------------------------------------------------------------------

def read_parquet_texts(path: Path, max_docs: int) -> list[str]:
    """The `text` column of a parquet file or of a folder's *.parquet (in path order), up to
    max_docs texts."""
    if not path.exists():
        raise DataError(f"fineweb-edu:{path} does not exist; give fineweb-edu:PATH with a parquet "
                        "file or a folder of *.parquet shards")
    shards = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not shards:
        raise DataError(f"fineweb-edu:{path} has no *.parquet files; download a shard into it: "
                        f"{FINEWEB_DOWNLOAD.replace('DIR', str(path))}")
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise DataError("reading local parquet shards needs pyarrow: pip install pyarrow") from None
    texts: list[str] = []
    for shard in shards:
        try:
            parquet = pyarrow.parquet.ParquetFile(shard)
            if "text" not in parquet.schema_arrow.names:
                raise DataError(f"{shard} has no `text` column (it has: "
                                f"{', '.join(parquet.schema_arrow.names)}); FineWeb-Edu shards do")
            for batch in parquet.iter_batches(batch_size=1024, columns=["text"]):
                texts.extend(text for text in batch.column("text").to_pylist() if text)
                if len(texts) >= max_docs:
                    return texts[:max_docs]
        except (OSError, pyarrow.ArrowException) as error:
            raise DataError(f"cannot read {shard} as parquet ({error}); give fineweb-edu:PATH "
                            "with FineWeb-Edu parquet shards") from None
    return texts


def load_streamed_fineweb(cache_dir: Path, max_docs: int, progress: bool) -> list[str]:
    """The first max_docs texts of FineWeb-Edu sample-10BT from the hub, cached once streamed."""
    cached = cache_dir / "corpora" / f"fineweb-edu-{FINEWEB_CONFIG}-{max_docs}.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    try:
        import datasets
    except ImportError:
        raise DataError("streaming fineweb-edu needs the datasets package: pip install datasets "
                        "pyarrow, or pass fineweb-edu:DIR with local parquet shards") from None
    try:
        rows = datasets.load_dataset(FINEWEB_REPO, name=FINEWEB_CONFIG, split="train",
                                     streaming=True)
        texts = [row["text"] for row in tqdm(islice(rows, max_docs), total=max_docs,
                                             desc="streaming fineweb-edu", unit="doc",
                                             disable=not progress)]
    except Exception as error:  # no network, hub or auth trouble: all have the same fix
        raise DataError(f"could not stream {FINEWEB_REPO} from the Hugging Face hub "
                        f"({type(error).__name__}: {error}); check the connection, or download "
                        f"a parquet shard ({FINEWEB_DOWNLOAD}) and pass fineweb-edu:DIR") from None
    write_json_atomically(cached, texts)
    return texts


# --- pydocs ------------------------------------------------------------------------------------

def pydocs_folder(path: str) -> Path:
    """The folder of HTML pages: PATH if given, else the installed python3.11-doc package's."""
    if not path:
        if not PYDOCS_DIR.is_dir():
            raise DataError(f"the `pydocs` corpus is the Python documentation of Debian's "
                            f"{PYDOCS_PACKAGE} package, which is not installed (no {PYDOCS_DIR}): "
                            f"apt-get install {PYDOCS_PACKAGE}, or give pydocs:PATH with a folder "
                            "of HTML pages")
        return PYDOCS_DIR
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"pydocs:{folder} is not a folder; give pydocs:PATH with a folder of HTML "
                        "pages")
    return folder


def pydocs_pages(folder: Path) -> list[str]:
    """Relative paths of the folder's .html pages (searched recursively), the general index,
    module index and search pages left out."""
    pages = sorted(file.relative_to(folder).as_posix() for file in folder.rglob("*.html")
                   if not PYDOCS_SKIPPED_PAGES.fullmatch(file.stem))
    if not pages:
        raise DataError(f"pydocs:{folder} has no .html pages; give pydocs:PATH with a folder of "
                        "HTML pages")
    return pages


def load_pydocs_pages(folder: Path, cache_dir: Path, progress: bool) -> list[tuple[str, str]]:
    """(relative path, plain text) of every page with text; parsed once, then read from the cache
    (keyed by the pages' paths and bytes)."""
    pages = pydocs_pages(folder)
    key = content_hash(page.encode() + b"\0" + (folder / page).read_bytes() for page in pages)
    cached = cache_dir / "corpora" / f"pydocs-{key}-clean{PYDOCS_CLEANING_VERSION}.json"
    if cached.is_file():
        return [(page, text) for page, text in json.loads(cached.read_text(encoding="utf-8"))]
    texts = ((page, html_main_text(read_utf8(folder / page)))
             for page in tqdm(pages, desc="cleaning pydocs pages", unit="page",
                              disable=not progress))
    documents = [(page, text) for page, text in texts if text]
    if not documents:
        raise DataError(f"no page in pydocs:{folder} has text in an element with role=\"main\" "
                        "(where Sphinx puts the page body); give pydocs:PATH with Sphinx HTML")
    write_json_atomically(cached, documents)
    return documents


def html_main_text(html: str) -> str:
    """The plain text of a page's main element (see MainText), normalised."""
    parser = MainText()
    parser.feed(html)
    parser.close()
    return normalize_document("".join(parser.pieces))


class MainText(HTMLParser):
    """Collects the text of the element with role="main" (the body of a Sphinx page, without the
    navigation, sidebars, header and footer around it).

    Whitespace is collapsed as a browser does, except in <pre>: code blocks are kept as they are,
    prompts and output included, as code is a large part of what the documentation says. Blocks
    are separated by blank lines, list items and definition terms by line breaks; a table row is
    one line with " | " between its cells. Scripts, styles, local tables of contents, lists of
    subpages and the ¶ permalinks are left out. Entities arrive decoded (convert_charrefs)."""

    def __init__(self) -> None:
        super().__init__()
        self.main = ElementScope()
        self.dropped = ElementScope()
        self.in_pre = False
        self.cell_depth = 0
        self.pieces: list[str] = []
        self.separator = ""  # goes before the next text, unless that text comes first

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.main.start(tag, attributes.get("role") == "main")
        if not self.main:
            return
        classes = set((attributes.get("class") or "").split())
        self.dropped.start(tag, tag in PYDOCS_DROPPED_TAGS
                           or not classes.isdisjoint(PYDOCS_DROPPED_CLASSES))
        if self.dropped:
            return
        if tag in PYDOCS_CELL_TAGS:
            self.cell_depth += 1
        self.in_pre = self.in_pre or tag == "pre"
        self.separate_block(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.main and not self.dropped:
            self.separate_block(tag)
            if tag in PYDOCS_CELL_TAGS:
                self.cell_depth -= 1
            self.in_pre = self.in_pre and tag != "pre"
        self.dropped.end(tag)
        self.main.end(tag)

    def handle_data(self, data: str) -> None:
        if not self.main or self.dropped:
            return
        if self.in_pre:
            self.write(data)
            return
        text = WHITESPACE_RUN.sub(" ", data)
        if text.startswith(" "):
            self.separate(" ")
        if text.strip():
            self.write(text.strip())
        if text.endswith(" "):
            self.separate(" ")

    def separate_block(self, tag: str) -> None:
        """The break at a block element's start or end (a space inside table cells)."""
        if tag in PYDOCS_CELL_TAGS:
            self.separate(" | ")
        elif tag in PYDOCS_PARAGRAPH_TAGS:
            self.separate(" " if self.cell_depth else "\n\n")
        elif tag in PYDOCS_LINE_TAGS:
            self.separate(" " if self.cell_depth else "\n")

    def separate(self, separator: str) -> None:
        self.separator = max(self.separator, separator, key=SEPARATORS.index)

    def write(self, text: str) -> None:
        if self.pieces:
            self.pieces.append(self.separator)
        self.pieces.append(text)
        self.separator = ""


class ElementScope:
    """Whether a parser is inside one element, told by counting the elements of the same tag
    nested in it (HTML leaves other tags unclosed: <p>, <li>, <br>)."""

    def __init__(self) -> None:
        self.tag, self.depth = "", 0

    def start(self, tag: str, opens: bool) -> None:
        """A start tag; `opens`: this element is the one to follow (when not inside one yet)."""
        if self.depth and tag == self.tag:
            self.depth += 1
        elif not self.depth and opens:
            self.tag, self.depth = tag, 1

    def end(self, tag: str) -> None:
        if self.depth and tag == self.tag:
            self.depth -= 1

    def __bool__(self) -> bool:
        return self.depth > 0
