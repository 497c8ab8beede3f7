"""Text data: corpora (`load_corpus`), a byte-level BPE tokenizer and cached token shards
(`prepare_text_data` -> TokenData, which serves training batches and validation windows)."""

from movelab.data.corpus import Corpus, load_corpus
from movelab.data.errors import DataError
from movelab.data.shards import TokenData, prepare_text_data

__all__ = ["Corpus", "DataError", "TokenData", "load_corpus", "prepare_text_data"]
