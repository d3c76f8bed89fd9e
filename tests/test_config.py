"""gae_course.config.env_flag: the one reader of the course's on/off environment variables."""

import pytest

from gae_course import config, data

FLAG = "GAE_COURSE_TEST_FLAG"


@pytest.mark.parametrize("value", ["1", "true", "TRUE", " yes ", "On"])
def test_on_values(monkeypatch, value):
    monkeypatch.setenv(FLAG, value)
    assert config.env_flag(FLAG) is True


@pytest.mark.parametrize("value", [None, "", "0", "false", "No", " off "])
def test_off_values(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(FLAG, raising=False)
    else:
        monkeypatch.setenv(FLAG, value)
    assert config.env_flag(FLAG) is False


@pytest.mark.parametrize("value", ["2", "ture", "y"])
def test_anything_else_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(FLAG, value)
    with pytest.raises(ValueError, match=rf"{FLAG}='{value}' is not an on/off value; set it to 1"):
        config.env_flag(FLAG)


def test_quick_mode_and_offline_read_their_flags_through_it(monkeypatch):
    monkeypatch.setenv("GAE_COURSE_QUICK", "yes")
    monkeypatch.setenv("GAE_COURSE_OFFLINE", "off")
    assert config.is_quick() and config.mode() == "quick" and config.pick(full=1, quick=2) == 2
    assert data.downloads_allowed() and not data.downloads_allowed(download=False)
    monkeypatch.setenv("GAE_COURSE_QUICK", "0")
    monkeypatch.setenv("GAE_COURSE_OFFLINE", "On")
    assert not config.is_quick() and config.mode() == "full"
    assert not data.downloads_allowed()
    monkeypatch.setenv("GAE_COURSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="GAE_COURSE_OFFLINE='maybe'"):
        data.downloads_allowed()
