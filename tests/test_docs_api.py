"""Every public name has a docstring, or is on the shrinking list scripts/undocumented.txt."""

from __future__ import annotations

from docstools import load_script

apinames = load_script("apinames")
INDEX = apinames.build_index()


def test_every_public_name_is_documented_or_on_the_ratchet_list() -> None:
    problems = apinames.check(INDEX)
    assert not problems, (
        "\n".join(problems)
        + "\n(write the docstring, or after merging run: python scripts/apinames.py --write)")


def test_ratchet_catches_a_new_undocumented_name_and_a_stale_entry() -> None:
    listed = apinames.read_ratchet()
    assert listed, "scripts/undocumented.txt is empty: delete this test's first half"
    one = sorted(listed)[0]
    problems = apinames.check(INDEX, listed - {one})
    assert problems == [f"{one}: public name without a docstring (write one)"]
    problems = apinames.check(INDEX, listed | {"sshlib.dial", "sshlib.gone"})
    assert "sshlib.dial: now has a docstring; delete its line from scripts/undocumented.txt" \
        in problems
    assert any(p.startswith("sshlib.gone: is no longer a public name") for p in problems)


def test_the_index_covers_the_facades_once_each() -> None:
    pages = INDEX.pages
    for mod in ("sshlib", "sshlib.aio", "sshlib.agent", "sshlib.errors", "sshlib.knownhosts"):
        assert mod in pages, f"{mod} has no reference page"
    paths = [n.path for n in INDEX.all_names()]
    assert len(paths) == len(set(paths))
    # one object, one place: the shortest public path wins
    assert "sshlib.dial" in paths and "sshlib.sync.client.dial" not in paths
    assert "sshlib.aio.dial" in paths
    # private modules are not public API
    assert not any(m.rsplit(".", 1)[-1].startswith("_") for m in pages)
