"""``keysweep completion bash|zsh|fish``: a completion script built from the parser.

bash and zsh come from ``shtab`` (static scripts: completing costs no Python
start-up). shtab has no fish support, so the fish script is written here from
the same parser: one ``complete`` line per command and option.
"""

from __future__ import annotations

import argparse

from scanner.report.safe_text import printable


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(p: argparse.ArgumentParser, name: str) -> str:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return choice.help or ""
    return ""


def _fish_quote(text: str) -> str:
    return "'" + printable(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(parser: argparse.ArgumentParser) -> str:
    prog = parser.prog
    lines = [f"# fish completion for {prog}", f"complete -c {prog} -f"]
    top = _subparsers(parser)
    names = " ".join(top)
    for name, sub in top.items():
        cond = f"not __fish_seen_subcommand_from {names}"
        describe = _fish_quote(_help(parser, name))
        lines.append(f"complete -c {prog} -n {_fish_quote(cond)} -a {name} -d {describe}")
        nested = _subparsers(sub)
        for inner_name, inner in nested.items():
            cond = (
                f"__fish_seen_subcommand_from {name}; and not __fish_seen_subcommand_from "
                + " ".join(nested)
            )
            lines.append(
                f"complete -c {prog} -n {_fish_quote(cond)} -a {inner_name} "
                f"-d {_fish_quote(_help(sub, inner_name))}"
            )
            lines += _fish_options(prog, f"__fish_seen_subcommand_from {inner_name}", inner)
        lines += _fish_options(prog, f"__fish_seen_subcommand_from {name}", sub)
        for action in sub._actions:
            if not action.option_strings and action.choices and not nested:
                choices = " ".join(str(c) for c in action.choices)
                lines.append(
                    f"complete -c {prog} -n {_fish_quote(f'__fish_seen_subcommand_from {name}')}"
                    f" -a {_fish_quote(choices)}"
                )
    return "\n".join(lines) + "\n"


def _fish_options(prog: str, cond: str, p: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in p._actions:
        longs = [o[2:] for o in action.option_strings if o.startswith("--")]
        shorts = [o[1:] for o in action.option_strings if len(o) == 2]
        if not longs:
            continue
        line = f"complete -c {prog} -n {_fish_quote(cond)} -l {longs[0]}"
        if shorts:
            line += f" -s {shorts[0]}"
        if action.help and action.help != argparse.SUPPRESS:
            line += f" -d {_fish_quote(action.help.split(';')[0][:80])}"
        if action.choices:
            line += f" -x -a {_fish_quote(' '.join(str(c) for c in action.choices))}"
        elif action.nargs != 0 and action.metavar in ("FILE", "PATH"):
            line += " -r -F"
        elif action.nargs != 0:
            line += " -r"
        out.append(line)
    return out


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    if shell == "fish":
        return fish(parser)
    import shtab

    return shtab.complete(parser, shell=shell)
