"""The `prose` corpus: English from Debian packages, built offline, with train / dev / test splits.

Sources, in the order that decides which copy of a duplicate is kept:
  gcide      dict-gcide     the GNU Collaborative International Dictionary of English (Webster's
                            1913 with additions): definitions, etymologies and quotations
  wn         dict-wn        WordNet 3.0 glosses and examples
  foldoc     dict-foldoc    the Free On-line Dictionary of Computing
  jargon     dict-jargon    the Jargon File
  devil      dict-devil     Ambrose Bierce's The Devil's Dictionary
  linux-doc  linux-doc-6.1  the Linux kernel's documentation (Sphinx HTML; its translations/
                            into other languages left out)
  pydocs     python3.11-doc the Python 3.11 documentation (the `pydocs` corpus's pages)

Documents. A dictionary's document is one headword: every entry (a distinct byte range of the
.dict file) that the index lists under that headword, case folded, in file order; an entry listed
under several headwords belongs to the first. A documentation document is one HTML page.

Dictionary entries are reflowed: indentation goes, the lines of a paragraph join into one (a line
continues the one above when it is indented deeper than where that one began), blank lines stay
paragraph breaks. Cross-reference braces ({word}) go. GCIDE also loses its provenance lines
([1913 Webster], [WordNet 1.5], ...) and the pronunciations after headwords (\\A*ban"don\\ and
the respelling in parentheses after it), and its ASCII letter codes ([ae], ['e], [=a]) become the
Unicode letters they stand for.

Deduplication, over all sources in the order above: a document whose text equals an earlier one
is dropped, and so is a paragraph of at least DEDUP_MIN_CHARS characters (whitespace collapsed)
that an earlier document already has; a document left empty is dropped. Boilerplate repeated over
pages and entries copied between dictionaries therefore appear once, and no text is in two splits.

Split: a document's key is its headword (dictionaries: the same word goes to the same split in
every dictionary) or source:path (pages). Its split follows from the key's hash alone, as a
number u in [0, 1): dev when u < DEV_FRACTION, test when u < DEV_FRACTION + TEST_FRACTION,
train otherwise. A document's split is therefore the same on every build, and stays put when
sources are added or removed. Dev is for every choice (learning rates, recipes); test for claims.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from movelab.data.cache import default_cache_dir, write_json_atomically
from movelab.data.corpus import html_main_text, load_corpus, pydocs_pages, read_utf8
from movelab.data.errors import DataError
from movelab.data.shards import prepare_text_data
from movelab.hashing import content_hash

DEV_FRACTION = TEST_FRACTION = 0.01
DEDUP_MIN_CHARS = 100
CLEANING_VERSION = 1  # bump when the cleaning or deduplication below changes
DICTD_DIR = Path("/usr/share/dictd")
DICTD_METADATA = re.compile(r"00-?database.*|00-.*")  # the dictd server's info entries
DICTD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
DICTD_DIGITS = {character: value for value, character in enumerate(DICTD_ALPHABET)}


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    kind: str  # "dictd": DICTD_DIR/<database>.index + .dict.dz; "sphinx": a folder of HTML pages
    location: Path  # dictd: the database's path without suffix; sphinx: the HTML folder
    # dictd line wrapping: by default a wrapped line is indented deeper than the line it
    # continues; wrapped_flush: every line of a paragraph is one wrapped line (same indentation)
    wrapped_flush: bool = False
    headword_alone: bool = False  # dictd: an entry's first line is its headword, nothing else
    skipped: tuple[str, ...] = ()  # sphinx: path prefixes (relative) left out

    def present(self) -> bool:
        if self.kind == "dictd":
            return all(self.location.with_suffix(s).is_file() for s in (".index", ".dict.dz"))
        return self.location.is_dir()

    def missing_file(self) -> Path:
        return self.location.with_suffix(".index") if self.kind == "dictd" else self.location


SOURCES = (
    Source("gcide", "dict-gcide", "dictd", DICTD_DIR / "gcide"),
    Source("wn", "dict-wn", "dictd", DICTD_DIR / "wn", headword_alone=True),
    Source("foldoc", "dict-foldoc", "dictd", DICTD_DIR / "foldoc", wrapped_flush=True),
    Source("jargon", "dict-jargon", "dictd", DICTD_DIR / "jargon", wrapped_flush=True),
    Source("devil", "dict-devil", "dictd", DICTD_DIR / "devil", wrapped_flush=True),
    Source("linux-doc", "linux-doc-6.1", "sphinx", Path("/usr/share/doc/linux-doc-6.1/html"),
           skipped=("translations/",)),
    Source("pydocs", "python3.11-doc", "sphinx", Path("/usr/share/doc/python3.11/html")),
)
PACKAGES = tuple(source.package for source in SOURCES)


@dataclass(frozen=True)
class Document:
    source: str
    key: str  # decides the split (see the module doc)
    text: str


@dataclass
class ProseSplits:
    train: list[Document]
    dev: list[Document]
    test: list[Document]
    dropped_documents: dict[str, int]  # per source: exact duplicates of an earlier document
    dropped_paragraphs: dict[str, int]  # per source: long paragraphs an earlier document has


# --- loading ---------------------------------------------------------------------------------

def load_prose(cache_dir: Path, progress: bool = False,
               sources: tuple[Source, ...] | None = None) -> ProseSplits:
    """The deduplicated documents of `sources` (default SOURCES), split; cleaned once, then read
    from the cache (keyed by the sources' files and the cleaning version)."""
    sources = SOURCES if sources is None else sources
    missing = [source for source in sources if not source.present()]
    if missing:
        raise DataError(
            "the `prose` corpus is built from Debian packages; missing: "
            + ", ".join(f"{s.package} (no {s.missing_file()})" for s in missing)
            + f"; install them: apt-get install {' '.join(s.package for s in missing)}")
    cached = Path(cache_dir) / "corpora" / f"prose-{sources_hash(sources)}-clean{CLEANING_VERSION}.json"
    if cached.is_file():
        saved = json.loads(cached.read_text(encoding="utf-8"))
        documents = [Document(*row) for row in saved["documents"]]
        return split_prose(documents, saved["dropped_documents"], saved["dropped_paragraphs"])
    raw = [document for source in sources for document in read_source(source, progress)]
    documents, dropped_documents, dropped_paragraphs = deduplicate(raw)
    write_json_atomically(cached, {
        "documents": [[d.source, d.key, d.text] for d in documents],
        "dropped_documents": dropped_documents, "dropped_paragraphs": dropped_paragraphs})
    return split_prose(documents, dropped_documents, dropped_paragraphs)


def sources_hash(sources: tuple[Source, ...]) -> str:
    """sha256 prefix over every input file's path and bytes (dictd files; HTML pages)."""
    def parts():
        for source in sources:
            yield f"{source}\0"
            for path in source_files(source):
                yield str(path).encode() + b"\0" + path.read_bytes()
    return content_hash(parts())


def source_files(source: Source) -> list[Path]:
    if source.kind == "dictd":
        return [source.location.with_suffix(".index"), source.location.with_suffix(".dict.dz")]
    return [source.location / page for page in sphinx_pages(source)]


def read_source(source: Source, progress: bool) -> list[Document]:
    if source.kind == "dictd":
        return list(read_dictd(source, progress))
    return list(read_sphinx(source, progress))


# --- dictd databases -------------------------------------------------------------------------

def decode_dictd_number(text: str) -> int:
    """A dictd index offset or length: base 64, most significant digit first, in DICTD_ALPHABET."""
    try:
        value = 0
        for character in text:
            value = value * 64 + DICTD_DIGITS[character]
        return value
    except KeyError:
        raise DataError(f"{text!r} is not a dictd base-64 number; is the .index file damaged? "
                        "reinstall its package") from None


def dictd_groups(index_text: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """(case-folded headword, its entries' (offset, length) in file order) from a dictd index:
    lines of headword, offset and length separated by tabs. An entry listed under several
    headwords goes with the first; the server's 00-database-* entries are left out."""
    groups: dict[str, list[tuple[int, int]]] = {}
    claimed: set[tuple[int, int]] = set()
    for number, line in enumerate(index_text.splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 3:
            raise DataError(f"line {number} of a dictd index is not headword<TAB>offset<TAB>length:"
                            f" {line[:60]!r}; reinstall its package")
        headword, entry = fields[0], (decode_dictd_number(fields[1]), decode_dictd_number(fields[2]))
        if DICTD_METADATA.fullmatch(headword) or entry in claimed:
            continue
        claimed.add(entry)
        groups.setdefault(headword.casefold(), []).append(entry)
    return [(headword, sorted(entries)) for headword, entries in groups.items()]


def read_dictd(source: Source, progress: bool) -> Iterator[Document]:
    """One document per headword group. The .dict.dz file is gzip (dictzip adds a random-access
    table in the gzip header's extra field, which gzip ignores), read whole."""
    index = source.location.with_suffix(".index").read_text(encoding="utf-8")
    with gzip.open(source.location.with_suffix(".dict.dz")) as file:
        data = file.read()
    groups = dictd_groups(index)
    for headword, entries in tqdm(groups, desc=f"cleaning {source.name}", unit="headword",
                                  disable=not progress):
        texts = (clean_entry(decode_entry(data[offset:offset + length]), source)
                 for offset, length in entries)
        text = "\n\n".join(text for text in texts if text)
        if text:
            yield Document(source.name, headword, text)


def decode_entry(raw: bytes) -> str:
    """UTF-8; the few bytes that are not (stray Windows-1252 quotes in GCIDE) become U+FFFD."""
    return raw.decode("utf-8", errors="replace")


GCIDE_PROVENANCE = re.compile(
    r"^\s*\[(?:1913 Webster|Webster 1913 Suppl\.|WordNet[^\]]*|PJC\.?|Century Dict\.[^\]]*|RDH|"
    r"RHUD|MW10|AS|JS|DC|CJB)(?:\s*\+?\s*(?:1913 Webster|Webster 1913 Suppl\.|WordNet[^\]]*|"
    r"PJC|AS|RDH|RHUD|MW10))*\]\s*$")
GCIDE_PRONUNCIATION = re.compile(r" ?\\[^\\\n]*\\(?: ?\([^()\n]*\))?")
CROSS_REFERENCE = re.compile(r"\{([^{}\n]*)\}")
FOLDOC_DATE = re.compile(r"\(\d{4}-\d{2}-\d{2}\)")
HYPHEN_BREAK = re.compile(r"[A-Za-z]-$")
SENSE_START = re.compile(r"(?:\d+\.|\([a-z]\)|Note:|Syn:|Usage:) ")
# GCIDE's ASCII codes for letters and signs (the ones that occur in running text; the rest are
# pronunciation marks, dropped with the pronunciations)
GCIDE_CODES = {
    "['e]": "é", "['a]": "á", "['o]": "ó", "['i]": "í", "['u]": "ú", "['E]": "É", "[`e]": "è",
    "[`a]": "à", "[^o]": "ô", "[^u]": "û", "[^a]": "â", "[^e]": "ê", "[^i]": "î", '["o]': "ö",
    '["e]': "ë", '["u]': "ü", '["i]': "ï", "[aum]": "ä", "[~n]": "ñ", "[,c]": "ç", "[ae]": "æ",
    "[AE]": "Æ", "[oe]": "œ", "[OE]": "Œ", "[eth]": "ð", "[thorn]": "þ", "[yogh]": "ȝ",
    "[deg]": "°", "[sect]": "§", "[pounds]": "£", "[root]": "√", "[alpha]": "α", "[beta]": "β",
    "[phi]": "φ", "[Delta]": "Δ", "[=a]": "ā", "[=e]": "ē", "[=o]": "ō", "[=u]": "ū",
    "[=y]": "ȳ", "[imac]": "ī", "[=ae]": "ǣ", "[a^]": "ă", "[e^]": "ĕ", "[i^]": "ĭ", "[o^]": "ŏ",
    "[u^]": "ŭ", "[~e]": "ẽ", "[.a]": "ȧ", "[ng]": "ŋ"}
GCIDE_CODE = re.compile("|".join(map(re.escape, GCIDE_CODES)))


def clean_entry(entry: str, source: Source) -> str:
    """One dictionary entry as plain paragraphs (see the module doc)."""
    lines = entry.splitlines()
    if source.name == "gcide":
        lines = [line for line in lines if not GCIDE_PROVENANCE.match(line)]
    text = reflow(lines, flush=source.wrapped_flush, headword_alone=source.headword_alone)
    if source.name == "gcide":
        text = GCIDE_CODE.sub(lambda code: GCIDE_CODES[code.group()],
                              GCIDE_PRONUNCIATION.sub("", text))
    if source.name == "foldoc":
        text = "\n\n".join(p for p in text.split("\n\n") if not FOLDOC_DATE.fullmatch(p))
    return CROSS_REFERENCE.sub(r"\1", text).strip()


def reflow(lines: list[str], *, flush: bool = False, headword_alone: bool = False) -> str:
    """Join wrapped lines into logical lines; blank lines separate paragraphs. A line continues
    the logical line above it when it is indented deeper than that line's first physical line,
    or, with `flush`, whenever it is in the same paragraph; a line that starts a numbered sense
    ("2. ", "(b) ") or a Note:, Syn: or Usage: paragraph starts its own, and so does the second
    line with `headword_alone` (the first is the headword). A word broken after a hyphen joins
    without a space."""
    paragraphs: list[list[str]] = [[]]  # logical lines of each paragraph
    start_indent = 0
    for number, line in enumerate(lines):
        text = line.strip()
        if not text:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        indent = len(line) - len(line.lstrip())
        current = paragraphs[-1]
        continues = current and (flush or indent > start_indent)
        if continues and not SENSE_START.match(text) and not (headword_alone and number == 1):
            current[-1] += ("" if HYPHEN_BREAK.search(current[-1]) else " ") + text
        else:
            current.append(text)
            start_indent = indent
    return "\n\n".join("\n".join(paragraph) for paragraph in paragraphs if paragraph)


# --- Sphinx HTML pages -------------------------------------------------------------------------

def sphinx_pages(source: Source) -> list[str]:
    return [page for page in pydocs_pages(source.location) if not page.startswith(source.skipped)]


def read_sphinx(source: Source, progress: bool) -> Iterator[Document]:
    for page in tqdm(sphinx_pages(source), desc=f"cleaning {source.name}", unit="page",
                     disable=not progress):
        text = html_main_text(read_utf8(source.location / page))
        if text:
            yield Document(source.name, f"{source.name}:{page}", text)


# --- deduplication and split -------------------------------------------------------------------

def deduplicate(documents: list[Document]) -> tuple[list[Document], dict[str, int], dict[str, int]]:
    """Documents in order, without exact repeats of earlier documents and without long
    paragraphs that an earlier document has (see the module doc); and, per source, how many
    documents and paragraphs were dropped."""
    seen_documents: set[bytes] = set()
    seen_paragraphs: set[bytes] = set()
    kept: list[Document] = []
    dropped_documents = {d.source: 0 for d in documents}
    dropped_paragraphs = dict(dropped_documents)
    for document in documents:
        digest = hashlib.sha256(document.text.encode()).digest()
        if digest in seen_documents:
            dropped_documents[document.source] += 1
            continue
        seen_documents.add(digest)
        paragraphs = []
        for paragraph in document.text.split("\n\n"):
            collapsed = " ".join(paragraph.split())
            if len(collapsed) >= DEDUP_MIN_CHARS:
                paragraph_digest = hashlib.sha256(collapsed.encode()).digest()
                if paragraph_digest in seen_paragraphs:
                    dropped_paragraphs[document.source] += 1
                    continue
                seen_paragraphs.add(paragraph_digest)
            paragraphs.append(paragraph)
        text = "\n\n".join(paragraphs)
        if not text.strip():
            dropped_documents[document.source] += 1
            continue
        kept.append(Document(document.source, document.key, text))
    return kept, dropped_documents, dropped_paragraphs


def split_of(key: str) -> str:
    """"dev", "test" or "train", from the key's hash alone."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    if u < DEV_FRACTION:
        return "dev"
    return "test" if u < DEV_FRACTION + TEST_FRACTION else "train"


def split_prose(documents: list[Document], dropped_documents: dict[str, int],
                dropped_paragraphs: dict[str, int]) -> ProseSplits:
    splits: dict[str, list[Document]] = {"train": [], "dev": [], "test": []}
    for document in documents:
        splits[split_of(document.key)].append(document)
    if not all(splits.values()):
        empty = [name for name, part in splits.items() if not part]
        raise DataError(f"the prose documents leave the {' and '.join(empty)} split empty; "
                        "a corpus this small cannot be split three ways")
    return ProseSplits(**splits, dropped_documents=dropped_documents,
                       dropped_paragraphs=dropped_paragraphs)


# --- composition -------------------------------------------------------------------------------

SPLITS = ("train", "dev", "test")


def composition(vocab_size: int = 4096, cache_dir: Path | None = None,
                progress: bool = False) -> dict:
    """What the prose corpus is made of: per source and split, documents, UTF-8 bytes and tokens
    at `vocab_size` (each document's tokens plus the EOS before it, so a split's tokens add up to
    its stream's length), and per source the duplicates dropped. Read from the cached streams."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    splits = load_prose(cache_dir, progress)
    streams = {"train": None, "dev": None, "test": None}
    for name in ("dev", "test"):
        data = prepare_text_data("prose", vocab_size, cache_dir, progress, eval_split=name)
        streams[name], streams["train"] = data.val_tokens, data.train_tokens
    rows: dict[str, dict] = {}
    for split in SPLITS:
        documents = getattr(splits, split)
        counts = document_token_counts(streams[split])
        if len(counts) != len(documents):
            raise DataError(f"the cached {split} stream holds {len(counts)} documents, the corpus "
                            f"{len(documents)}; delete {cache_dir / 'bpe'} and build it again")
        for document, tokens in zip(documents, counts):
            row = rows.setdefault(document.source, {f"{s}_{m}": 0 for s in SPLITS
                                                    for m in ("documents", "bytes", "tokens")})
            row[f"{split}_documents"] += 1
            row[f"{split}_bytes"] += len(document.text.encode())
            row[f"{split}_tokens"] += int(tokens)
    for source, row in rows.items():
        row["duplicate_documents"] = splits.dropped_documents.get(source, 0)
        row["duplicate_paragraphs"] = splits.dropped_paragraphs.get(source, 0)
    return {"vocab_size": vocab_size, "sources": rows}


def split_table(stats: dict) -> str:
    """Documents, bytes and tokens of each split, as a markdown table."""
    lines = [f"| split | documents | MB | tokens at V={stats['vocab_size']} (M) | bytes per token |",
             "| --- | --- | --- | --- | --- |"]
    for split in SPLITS:
        documents, size, tokens = (sum(row[f"{split}_{m}"] for row in stats["sources"].values())
                                   for m in ("documents", "bytes", "tokens"))
        lines.append(f"| {split} | {documents:,} | {size / 1e6:.2f} | {tokens / 1e6:.3f} | "
                     f"{size / tokens:.3f} |")
    return "\n".join(lines)


def vocabulary_table(vocab_sizes: tuple[int, ...] = (1024, 4096, 16384),
                     cache_dir: Path | None = None, progress: bool = False) -> str:
    """Tokens of each split under the tokenizer of each vocabulary size (all trained on the
    train split), as a markdown table."""
    lines = ["| vocabulary | train tokens (M) | dev tokens | test tokens | train bytes per token |",
             "| --- | --- | --- | --- | --- |"]
    for vocab_size in vocab_sizes:
        dev, test = (prepare_text_data("prose", vocab_size, cache_dir, progress, eval_split=split)
                     for split in ("dev", "test"))
        lines.append(f"| {vocab_size} | {len(dev.train_tokens) / 1e6:.3f} | "
                     f"{len(dev.val_tokens):,} | {len(test.val_tokens):,} | "
                     f"{dev.train_bytes / len(dev.train_tokens):.3f} |")
    return "\n".join(lines)



def document_token_counts(stream) -> list[int]:
    """Tokens of each document in a stream (EOS, then the document's tokens), EOS included."""
    starts = np.flatnonzero(np.asarray(stream) == 0)
    return np.diff(np.append(starts, len(stream))).tolist()


def composition_table(stats: dict) -> str:
    """The composition as a markdown table (what docs/corpora.md shows)."""
    package = {source.name: source.package for source in SOURCES}
    header = ("| source | package | documents | MB | tokens (M) | train tokens (M) | dev tokens | "
              "test tokens | duplicates dropped (documents / paragraphs) |")
    lines = [header, "|" + " --- |" * header.count(" | ") + " --- |"]
    totals: dict[str, int] = {}
    for source, row in stats["sources"].items():
        for key, value in row.items():
            totals[key] = totals.get(key, 0) + value
        lines.append(composition_line(source, package.get(source, ""), row))
    lines.append(composition_line("**all**", "", totals))
    return "\n".join(lines)


def composition_line(source: str, package: str, row: dict) -> str:
    documents = sum(row[f"{s}_documents"] for s in SPLITS)
    size = sum(row[f"{s}_bytes"] for s in SPLITS)
    tokens = sum(row[f"{s}_tokens"] for s in SPLITS)
    return (f"| {source} | {package} | {documents:,} | {size / 1e6:.1f} | {tokens / 1e6:.2f} | "
            f"{row['train_tokens'] / 1e6:.2f} | {row['dev_tokens']:,} | {row['test_tokens']:,} | "
            f"{row['duplicate_documents']:,} / {row['duplicate_paragraphs']:,} |")


def package_versions() -> dict[str, str]:
    """The installed Debian version of each source's package ("not installed" where dpkg has
    none). Debian updates some of them within a release (linux-doc-6.1 with each kernel point
    release), and the corpus, its split and its tokenizer change with them."""
    versions = {}
    for package in PACKAGES:
        try:
            found = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                                   capture_output=True, text=True, check=False).stdout.strip()
        except OSError:  # no dpkg on this machine
            found = ""
        versions[package] = found or "not installed"
    return versions


def versions_text(versions: dict[str, str]) -> str:
    """The packages a build is made from, as docs/corpora.md names them above its tables."""
    return "Built from " + ", ".join(f"{package} {version}" for package, version in versions.items())


def build_line(versions: dict[str, str], corpus_hash: str) -> str:
    """`versions_text` and the corpus's content hash (what each run's result.json records as
    data.content_hash), as docs/corpora.md states them."""
    return f"{versions_text(versions)}; content hash {corpus_hash}."


def main() -> None:
    """`python -m movelab.data.prose`: build the corpus (cached) and print the tables of
    docs/corpora.md."""
    stats = composition(progress=True)
    line = build_line(package_versions(), load_corpus("prose", default_cache_dir()).content_hash)
    print(line, composition_table(stats), split_table(stats), vocabulary_table(progress=True),
          sep="\n\n")


if __name__ == "__main__":
    main()
