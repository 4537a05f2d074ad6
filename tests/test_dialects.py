"""dialects.py: every provider in the table has the whole interface, so a third one that
forgets a name fails here rather than on a user's sign-in."""

import inspect

import pytest

import dialects
from providers import PROVIDERS

INTERFACE = {
    name
    for name in {*dialects.Dialect.__annotations__, *vars(dialects.Dialect)}
    if not name.startswith("_")
}


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_every_dialect_has_every_name_of_the_interface(key):
    dialect = PROVIDERS[key]
    assert dialect.KEY == key
    assert sorted(INTERFACE - set(vars(dialect))) == []


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_the_dialects_functions_take_what_the_interface_says(key):
    dialect = PROVIDERS[key]
    for name, declared in vars(dialects.Dialect).items():
        if inspect.isfunction(declared) and not name.startswith("_"):
            expected = list(inspect.signature(declared).parameters)[1:]  # without self
            assert list(inspect.signature(getattr(dialect, name)).parameters) == expected, name


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_each_dialect_names_its_own_settings_under_its_prefix(key):
    dialect = PROVIDERS[key]
    assert {"client_id", "client_secret", "redirect_uri"} <= set(dialect.SETTINGS)
    assert all(name.startswith(dialect.SETTINGS_PREFIX + "_") for name in dialect.SETTINGS.values())
