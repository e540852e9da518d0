"""What a VM reports is bounded and escaped before it is kept, logged or shown."""

from __future__ import annotations

import pytest

from shared.domain import untrusted
from shared.domain.errors import Conflict
from shared.domain.mounting import owner_uid


def test_control_characters_are_escaped_so_a_vm_cannot_forge_log_lines() -> None:
    forged = "ok\n2026-12-02 INFO op=x Succeeded\x1b[31m\r\t\u2028"
    shown = untrusted.text(forged)
    assert "\n" not in shown and "\x1b" not in shown and "\r" not in shown and "\u2028" not in shown
    assert shown == "ok\\x0a2026-12-02 INFO op=x Succeeded\\x1b[31m\\x0d\\x09\\u2028"


def test_long_text_is_capped_at_its_start_or_for_errors_its_end() -> None:
    flood = "a" * 10_000 + "the reason"
    assert untrusted.text(flood) == "a" * 300 + "… (9710 more characters)"
    assert untrusted.text(flood, keep_end=True).endswith("a" * 290 + "the reason")
    assert len(untrusted.text(flood, keep_end=True)) < 340


def test_a_vm_json_answer_is_bounded_in_every_direction() -> None:
    nested: object = "deep"
    for _ in range(10):
        nested = {"k": [nested]}
    answer = {"success": True, "ownerUid": 1000, "errors": ["x" * 5000] * 100, "nested": nested}
    bounded = untrusted.from_vm(answer)
    assert bounded["success"] is True and bounded["ownerUid"] == 1000
    assert len(bounded["errors"]) == untrusted.MAX_ITEMS and len(bounded["errors"][0]) < 330
    assert len(str(bounded["nested"])) < 200
    many = untrusted.from_vm({str(i): i for i in range(1000)})
    assert len(many) == untrusted.MAX_ITEMS


def test_markdown_keeps_no_formatting_link_html_or_mention() -> None:
    hostile = "**bold** [click](https://evil.example) <b>x</b> `code` # @channel @here @Everyone mail@host.com"
    shown = untrusted.markdown(hostile)
    for mention in ("@channel", "@here", "@Everyone"):
        assert mention not in shown
    assert "@" + untrusted.WORD_JOINER + "channel" in shown
    assert "mail@host.com" in shown.replace("\\", "")  # an address is no mention
    assert shown.startswith(r"\*\*bold\*\* \[click\]\(https://evil.example\) \<b\>x\</b\> \`code\` \#")


@pytest.mark.parametrize("reported", [0, -1, 999, 60001, "1000", 1000.0, True, None, [1000]])
def test_an_owner_uid_outside_the_range_of_normal_users_is_refused(reported: object) -> None:
    with pytest.raises(Conflict) as refused:
        owner_uid(reported, "vm1")
    assert "outside the range of normal users" in refused.value.message and "vm1" in refused.value.message


@pytest.mark.parametrize("reported", [1000, 1001, 60000])
def test_a_normal_users_uid_is_taken(reported: int) -> None:
    assert owner_uid(reported, "vm1") == reported
