"""Configuration that is not Hanamaki's: every setting declared, from a TOML file (APP_CONFIG) and the environment."""

from __future__ import annotations

import secrets

import pytest

from core import config


def _production(monkeypatch):
    for var in config.Config.SECRETS.values():
        monkeypatch.setenv(var, secrets.token_hex(32))


def test_production_will_not_start_without_the_municipality_code(monkeypatch):
    _production(monkeypatch)
    monkeypatch.delenv("MUNICIPALITY_CODE", raising=False)
    monkeypatch.delenv("APP_CONFIG", raising=False)
    with pytest.raises(config.ConfigError, match="MUNICIPALITY_CODE must be set in production"):
        config.load({"APP_ENV": "production"})


def test_production_assumes_no_connected_municipality_of_the_demo(monkeypatch):
    _production(monkeypatch)
    monkeypatch.setenv("MUNICIPALITY_CODE", "032018")
    monkeypatch.delenv("CONNECTED_MUNICIPALITIES", raising=False)
    cfg = config.load({"APP_ENV": "production"})
    assert cfg["MUNICIPALITY_CODE"] == "032018" and config.connected_municipalities(cfg) == ()
    assert cfg["BACKOFFICE_DATABASE_URL"].endswith("backoffice-032018.db")


def test_a_toml_file_sets_the_municipality_its_connections_fees_and_sensitive_kinds(monkeypatch, tmp_path):
    for name in ("MUNICIPALITY_CODE", "CONNECTED_MUNICIPALITIES", "CERTIFICATE_FEE_YEN", "SENSITIVE_CASE_KINDS"):
        monkeypatch.delenv(name, raising=False)
    _production(monkeypatch)
    path = tmp_path / "morioka.toml"
    path.write_text('MUNICIPALITY_CODE = "032018"\nCONNECTED_MUNICIPALITIES = ["032018", "032051"]\n'
                    'SENSITIVE_CASE_KINDS = ["move_out"]\nLOCKOUT_THRESHOLD = 3\n'
                    '[CERTIFICATE_FEE_YEN]\n"032018" = 350\n"032051" = 300\n', encoding="utf-8")
    monkeypatch.setenv("APP_CONFIG", str(path))
    cfg = config.load({"APP_ENV": "production"})
    assert cfg["MUNICIPALITY_CODE"] == "032018" and cfg["LOCKOUT_THRESHOLD"] == 3
    assert config.connected_municipalities(cfg) == ("032018", "032051")
    assert cfg["CERTIFICATE_FEE_YEN"] == {"032018": 350, "032051": 300}
    assert cfg["SENSITIVE_CASE_KINDS"] == ("move_out",)
    # The environment is above the file.
    monkeypatch.setenv("CONNECTED_MUNICIPALITIES", "032018,032069")
    monkeypatch.setenv("CERTIFICATE_FEE_YEN", "032018=400")
    monkeypatch.setenv("LOCKOUT_THRESHOLD", "4")
    cfg = config.load({"APP_ENV": "production"})
    assert config.connected_municipalities(cfg) == ("032018", "032069")
    assert cfg["CERTIFICATE_FEE_YEN"] == {"032018": 400} and cfg["LOCKOUT_THRESHOLD"] == 4


@pytest.mark.parametrize(("text", "words"), [
    ('CONNECTED_MUNICIPALITY = ["032051"]\n', "do not exist: CONNECTED_MUNICIPALITY"),
    ('FIELD_ENCRYPTION_KEY = "00"\n', "secrets come from the environment only"),
    ('MUNICIPALITY_CODE = \n', "cannot be read as TOML"),
    ('CERTIFICATE_FEE_YEN = -1\n', "CERTIFICATE_FEE_YEN must be whole yen"),
])
def test_a_toml_file_with_a_setting_that_does_not_exist_a_secret_or_a_bad_value_stops_the_start(
        monkeypatch, tmp_path, text, words):
    monkeypatch.delenv("CERTIFICATE_FEE_YEN", raising=False)
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(config.ConfigError, match=words):
        config.load({"APP_ENV": "test", "APP_CONFIG": str(path)})


def test_connected_municipalities_from_the_environment_are_whole_codes_never_parts_of_one(monkeypatch, portal_app):
    """A comma list in the environment: "2051" is part of the text "032051,032069" but connects nothing."""
    from portal.services import applications, municipalities

    monkeypatch.setenv("CONNECTED_MUNICIPALITIES", "032051, 032069")
    assert config.load({"APP_ENV": "test"})["CONNECTED_MUNICIPALITIES"] == ("032051", "032069")
    portal_app.config["CONNECTED_MUNICIPALITIES"] = "032051,032069"
    with portal_app.app_context():
        assert applications.is_connected("032069") and municipalities.is_connected("032069")
        assert not applications.is_connected("2051") and not applications.is_connected("032051,")
        portal_app.config["CONNECTED_MUNICIPALITIES"] = ("032051", "131016")
        with pytest.raises(config.UnknownMunicipalityError, match="131016"):
            applications.is_connected("032051")
