import re

import pytest

from collector.ids import ALPHABET, is_bundle_id, new_bundle_id, normalize


def test_new_ids_match_the_format_and_differ():
    ids = {new_bundle_id() for _ in range(2000)}
    assert len(ids) == 2000
    for i in ids:
        assert re.fullmatch(r"JCD-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", i), i
        assert is_bundle_id(i)


def test_ids_use_every_symbol_of_the_alphabet():
    seen = set("".join(new_bundle_id()[4:].replace("-", "") for _ in range(500)))
    assert seen == set(ALPHABET)


@pytest.mark.parametrize("typed", ["jcd-abcd-efgh-jkmn", "JCDABCDEFGHJKMN", " jcd abcd efgh jkmn ",
                                   "ABCD-EFGH-JKMN"])
def test_normalize_accepts_what_people_type(typed):
    assert normalize(typed) == "JCD-ABCD-EFGH-JKMN"


def test_normalize_folds_crockford_misreadings():
    assert normalize("JCD-O0IL-0000-0000") == "JCD-0011-0000-0000"


@pytest.mark.parametrize("bad", ["", "JCD-1234", "JCD-ABCD-EFGH-JKMU", "JCD-ABCD-EFGH-JKMN-1234"])
def test_normalize_rejects_non_ids_with_a_clear_message(bad):
    with pytest.raises(ValueError, match="not a bundle ID"):
        normalize(bad)
