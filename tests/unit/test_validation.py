from __future__ import annotations

import pytest

from shared.domain import validation as v
from shared.domain.errors import ErrorCode, ValidationError
from shared.domain.models import DetachMode, Redundancy, Tier


class TestStorageAccountName:
    @pytest.mark.parametrize("name", ["abc", "teamhome01", "a" * 24, "0123456789"])
    def test_accepts_3_to_24_lowercase_letters_and_digits(self, name: str) -> None:
        assert v.storage_account_name(name) == name

    @pytest.mark.parametrize("name", ["ab", "a" * 25, "TeamHome", "team-home", "team_home", "tëam",
                                      "team home", "abc\n", " abc", "abc;rm"])
    def test_refuses_anything_else(self, name: str) -> None:
        with pytest.raises(ValidationError) as err:
            v.storage_account_name(name)
        assert err.value.code is ErrorCode.VALIDATION_ERROR
        assert "3-24 lowercase letters and digits" in err.value.causes[0]

    @pytest.mark.parametrize("value", [None, "", 123, ["abc"], {"a": 1}, True])
    def test_refuses_non_strings(self, value: object) -> None:
        with pytest.raises(ValidationError, match="must be a non-empty string"):
            v.storage_account_name(value)


class TestResourceGroupName:
    @pytest.mark.parametrize("name", ["rg", "my-rg_1", "rg.prod", "(rg)", "a" * 90, "räksmörgås", "R"])
    def test_accepts_azure_pattern(self, name: str) -> None:
        assert v.resource_group_name(name) == name

    @pytest.mark.parametrize("name", ["rg.", "a" * 91, "rg/x", "rg x", "rg#", "rg?", "rg\\x",
                                      "rg\x00", "rg|x", "rg;ls", "rg$(x)"])
    def test_refuses_other_characters_length_and_trailing_period(self, name: str) -> None:
        with pytest.raises(ValidationError):
            v.resource_group_name(name)


class TestRegionName:
    @pytest.mark.parametrize(("given", "expected"), [
        ("eastus", "eastus"), ("East US", "eastus"), ("westus2", "westus2"),
        ("Sweden Central", "swedencentral"), ("EASTUS", "eastus")])
    def test_normalises_display_names(self, given: str, expected: str) -> None:
        assert v.region_name(given) == expected

    @pytest.mark.parametrize("name", ["east-us", "2eastus", "e", "east_us", "eastus;", "a" * 41])
    def test_refuses_malformed(self, name: str) -> None:
        with pytest.raises(ValidationError):
            v.region_name(name)


class TestVmName:
    @pytest.mark.parametrize("name", ["vm1", "a", "web-01", "node.prod", "A_b", "x" * 64, "vm_"])
    def test_accepts_linux_vm_names(self, name: str) -> None:
        assert v.vm_name(name) == name

    @pytest.mark.parametrize("name", ["-vm", "_vm", "vm-", "vm.", "x" * 65, "vm 1", "vm/1", "vm;1",
                                      "vm$", "vm\n", "é"])
    def test_refuses_others(self, name: str) -> None:
        with pytest.raises(ValidationError):
            v.vm_name(name)


class TestMountPoint:
    @pytest.mark.parametrize("path", ["/home/azureuser", "/home/a_b-c", "/home/_svc", "/home/" + "u" * 32])
    def test_a_users_home_is_accepted(self, path: str) -> None:
        assert v.mount_point(path) == path
        assert v.home_user(path) == path.rpartition("/")[2]

    def test_an_operators_root_adds_homes_and_nothing_else(self) -> None:
        roots = v.home_roots("/data/homes, /srv/people")
        assert roots == ("/home", "/data/homes", "/srv/people")
        assert v.mount_point("/data/homes/alice", roots=roots) == "/data/homes/alice"
        with pytest.raises(ValidationError):
            v.mount_point("/data/homes/alice")  # not without the setting
        with pytest.raises(ValidationError):
            v.mount_point("/data/homes/alice/work", roots=roots)

    @pytest.mark.parametrize("root", ["/", "/etc", "/etc/skel", "/usr/local", "/root", "/var/lib/x",
                                      "/var/spool/cron", "/tmp", "/tmp/homes", "relative", "/a/../etc"])
    def test_a_root_over_the_systems_files_is_refused(self, root: str) -> None:
        with pytest.raises(ValidationError):
            v.home_roots(root)

    @pytest.mark.parametrize(("path", "why"), [
        ("home/azureuser", "absolute"),
        ("/home/azureuser/", "normalised"),
        ("/home//azureuser", "normalised"),
        ("/home/../etc", "normalised"),
        ("/home/./azureuser", "normalised"),
        ("//home/azureuser", "normalised"),
        ("/home/azure user", "only letters"),
        ("/home/$(reboot)", "only letters"),
        ("/home/a;b", "only letters"),
        ("/home/`id`", "only letters"),
        ("/home/a\nb", "only letters"),
        ("/home/a\x00b", "only letters"),
        ("/home/a*", "only letters"),
        ("/home/-rf", "start with '-'"),
        ("/home/" + "a" * 256, "255"),
        ("/home/" + "a" * 33, "not a Linux user name"),
        ("/home/Azure", "not a Linux user name"),
        ("/home/a.b", "not a Linux user name"),
        ("/home/user@corp", "not a Linux user name"),
        ("/", "nothing else"),
        ("/home", "nothing else"),
        ("/etc", "nothing else"),
        ("/etc/ssh", "nothing else"),
        ("/var/spool/cron/crontabs", "nothing else"),
        ("/root/bin", "nothing else"),
        ("/opt/x", "nothing else"),
        ("/home/azureuser/work", "nothing deeper"),
        ("/srv/home/x", "nothing else"),
        ("/proc/1", "nothing else"),
    ])
    def test_anything_but_a_users_home_is_refused(self, path: str, why: str) -> None:
        with pytest.raises(ValidationError) as err:
            v.mount_point(path)
        assert why in " ".join(err.value.causes)


class TestSize:
    @pytest.mark.parametrize(("given", "gib"), [
        (100, 100), ("100", 100), ("100GB", 100), ("100GiB", 100), ("100gib", 100), ("1TB", 1024),
        ("1TiB", 1024), ("1tb", 1024), ("250GB", 250), ("100TiB", 102400),
        (102400, 102400), (100.0, 100)])  # 100.0 is an integer to JSON Schema, so to the service
    def test_reads_sizes_as_gib(self, given: object, gib: int) -> None:
        assert v.size_gib(given) == gib

    @pytest.mark.parametrize("given", [99, "99GB", 0, -100, "101TiB", 102401, "1000000TB"])
    def test_refuses_sizes_outside_the_premium_range(self, given: object) -> None:
        with pytest.raises(ValidationError) as err:
            v.size_gib(given)
        assert "100 GiB to 102400 GiB" in err.value.causes[0]

    @pytest.mark.parametrize("given", ["100MB", "lots", "", "1e3", "100 G B", True, None, 100.5,
                                       [100], "1,000", "١٠٠",  # noqa: RUF001 (non-ASCII digits)
                                       "100 GiB", " 100", "0100", "+100", "1.5TiB", "100.0", "100GiBs"])
    def test_refuses_what_is_not_a_size(self, given: object) -> None:
        """No spaces, fractions, signs or leading zeros: what the document's pattern says."""
        with pytest.raises(ValidationError, match="is not a size"):
            v.size_gib(given)


class TestTierAndRedundancy:
    def test_premium_is_the_tier(self) -> None:
        assert v.tier("Premium") is Tier.PREMIUM

    @pytest.mark.parametrize("given", ["premium", "PREMIUM"])
    def test_values_are_spelled_as_the_document_lists_them(self, given: str) -> None:
        with pytest.raises(ValidationError, match="not a known tier"):
            v.tier(given)
        with pytest.raises(ValidationError):
            v.redundancy("zrs")
        with pytest.raises(ValidationError):
            v.detach_mode("RESTORE")

    @pytest.mark.parametrize("given", ["Standard", "standard", "Hot", "Cool", "TransactionOptimized",
                                       "StandardV2"])
    def test_standard_tiers_are_refused_with_the_reason(self, given: str) -> None:
        with pytest.raises(ValidationError) as err:
            v.tier(given)
        assert err.value.code is ErrorCode.UNSUPPORTED_TIER
        assert "SSD (premium)" in err.value.causes[0]

    def test_unknown_tier(self) -> None:
        with pytest.raises(ValidationError) as err:
            v.tier("Gold")
        assert err.value.code is ErrorCode.VALIDATION_ERROR

    @pytest.mark.parametrize(("given", "expected"), [("LRS", Redundancy.LRS), ("ZRS", Redundancy.ZRS)])
    def test_redundancy(self, given: str, expected: Redundancy) -> None:
        assert v.redundancy(given) is expected

    @pytest.mark.parametrize("given", ["GRS", "GZRS", "RA-GRS", "lrs2"])
    def test_redundancy_without_nfs_is_refused(self, given: str) -> None:
        with pytest.raises(ValidationError, match="redundancy"):
            v.redundancy(given)


class TestSmallValues:
    @pytest.mark.parametrize(("given", "expected"), [("copy", DetachMode.COPY), ("restore", DetachMode.RESTORE)])
    def test_detach_mode(self, given: str, expected: DetachMode) -> None:
        assert v.detach_mode(given) is expected

    def test_detach_mode_unknown(self) -> None:
        with pytest.raises(ValidationError):
            v.detach_mode("move")

    @pytest.mark.parametrize(("given", "expected"), [("true", True), ("false", False)])
    def test_flag(self, given: object, expected: bool) -> None:
        assert v.flag(given, "force") is expected

    @pytest.mark.parametrize("given", ["maybe", 2, None, "tru", "1", "yes", "0", "", "True", True])
    def test_flag_refuses_others(self, given: object) -> None:
        """A query flag is `true` or `false`, as OpenAPI writes a boolean in a query string."""
        with pytest.raises(ValidationError, match="'force' must be true or false"):
            v.flag(given, "force")

    def test_a_json_boolean_is_true_or_false_only(self) -> None:
        assert v.boolean(True, "guardSubnet") is True
        for given in ("true", 1, None):
            with pytest.raises(ValidationError, match="'guardSubnet' must be true or false"):
                v.boolean(given, "guardSubnet")

    @pytest.mark.parametrize("key", ["a", "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * 255, "k:1/2"])
    def test_idempotency_key_accepts_printable_ascii(self, key: str) -> None:
        assert v.idempotency_key(key) == key

    @pytest.mark.parametrize("key", ["", "x" * 256, "a b", "ключ", "a\tb"])
    def test_idempotency_key_refuses_others(self, key: str) -> None:
        with pytest.raises(ValidationError):
            v.idempotency_key(key)

    @pytest.mark.parametrize(("given", "ok"), [("1", True), ("1000", True), ("0", False), ("1001", False),
                                               ("-1", False), ("x", False), ("", False)])
    def test_page_size(self, given: str, ok: bool) -> None:
        if ok:
            assert v.page_size(given) == int(given)
        else:
            with pytest.raises(ValidationError):
                v.page_size(given)


class TestProblems:
    def test_one_problem_is_raised_as_itself(self) -> None:
        problems = v.Problems()
        problems.check(v.tier, "Standard")
        with pytest.raises(ValidationError) as err:
            problems.raise_if_any()
        assert err.value.code is ErrorCode.UNSUPPORTED_TIER

    def test_several_problems_are_reported_together(self) -> None:
        problems = v.Problems()
        assert problems.check(v.storage_account_name, "A!") is None
        assert problems.check(v.size_gib, 5) is None
        assert problems.check(v.region_name, "eastus") == "eastus"
        with pytest.raises(ValidationError) as err:
            problems.raise_if_any()
        assert len(err.value.causes) == 2
        assert "storage account name" in err.value.causes[0]
        assert "provisionedV1 NFS share" in err.value.causes[1]

    def test_no_problem_raises_nothing(self) -> None:
        v.Problems().raise_if_any()
