pytest_plugins = ["tests.fixtures.settings", "tests.fixtures.smtp"]
