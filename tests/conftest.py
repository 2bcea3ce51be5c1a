"""Shared fixtures: local text files and a locally trained tokenizer (no hub)."""

from __future__ import annotations

import pytest

from hf_spectral.corpus import stdlib_texts, train_tokenizer, write_text_files


@pytest.fixture(scope="session")
def text_files(tmp_path_factory):
    """train.txt / eval.txt of standard-library source (small slices), for load_dataset("text", ...)."""
    return write_text_files(tmp_path_factory.mktemp("text"), max_chars=120_000)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A 512-token byte-level BPE tokenizer trained on standard-library source, saved for from_pretrained."""
    directory = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(stdlib_texts("train", max_chars=300_000), 512, directory)
    return directory
