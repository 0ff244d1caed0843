"""DiffuseMixError and its subclasses as values: what survives a trip between processes."""

def test_an_error_without_a_value_keeps_its_message_through_pickle():
    """Errors travel between processes (Ray's workers hand theirs to the driver): "no value" must stay no value,
    not become "; got <object object at 0x...>"."""
    import pickle

    from diffusemix.errors import DiffuseMixError, SettingError

    for err in (DiffuseMixError("is a symbolic link", path="/out/a.png", hint="Remove it"),
                SettingError("must be positive", owner="Recipe", field="size")):
        back = pickle.loads(pickle.dumps(err))
        assert str(back) == str(err) and back.message() == err.message() and not back.has_value
    valued = pickle.loads(pickle.dumps(SettingError("must be positive", owner="Recipe", field="size", value=-1)))
    assert valued.has_value and valued.message().endswith("; got -1")
