from spacevllm.cli import main


def test_help_exits_zero(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
