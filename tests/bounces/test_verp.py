from mailer.bounces.verp import deliveries_in, delivery_for, return_path_for


def test_return_path_round_trip(settings):
    address = return_path_for(settings, 42)
    assert address.startswith("bounces+42-") and address.endswith("@example.org")
    assert delivery_for(settings, address) == 42
    assert delivery_for(settings, f"<{address.upper()}>") == 42  # some systems change case; some add brackets


def test_forged_or_foreign_addresses_name_no_delivery(settings):
    good = return_path_for(settings, 42)
    signature = good.split("-", 1)[1].split("@")[0]
    assert delivery_for(settings, f"bounces+43-{signature}@example.org") is None  # another delivery's signature
    assert delivery_for(settings, "bounces+42-0000000000000000@example.org") is None
    assert delivery_for(settings, "news@example.org") is None
    assert delivery_for(settings, "bounces+x-abc@example.org") is None
    assert delivery_for(settings, "") is None


def test_old_keys_keep_old_return_paths_valid(settings):
    old = return_path_for(settings, 7)
    rotated = settings.model_copy(update={"secret_key": "a-brand-new-secret-key-42", "old_secret_keys": [settings.secret_key]})
    assert delivery_for(rotated, old) == 7
    assert return_path_for(rotated, 7) != old


def test_return_path_setting_gives_local_part_and_domain(settings):
    custom = settings.model_copy(update={"return_path": "list+bounce@lists.example.org"})
    address = return_path_for(custom, 5)
    assert address.startswith("list+bounce+5-") and address.endswith("@lists.example.org")
    assert delivery_for(custom, address) == 5
    assert delivery_for(settings, address) is None


def test_deliveries_in_finds_signed_paths_anywhere_once_each(settings):
    first, second = return_path_for(settings, 3), return_path_for(settings, 9)
    text = f"To: {first}\nDelivered-To: {first.upper()}\n\nReturn-Path: <{second}>\nbounces+4-deadbeefdeadbeef@example.org"
    assert deliveries_in(settings, text.encode()) == [3, 9]
