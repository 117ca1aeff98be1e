"""Reading a YAML file: a key given twice is an error (YAML would keep the last silently), and so is a file that is
not text or not a mapping."""

from pathlib import Path
from typing import Any, Dict

import yaml

from ..errors import ConfigError

class _StrictLoader(yaml.SafeLoader):
    """safe_load (plain data only, never object construction from tags) that refuses a key given twice."""


class _DuplicateKey(Exception):
    def __init__(self, key, first, second):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


def _mapping_without_duplicates(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen and key != "<<":
                raise _DuplicateKey(key, seen[key], key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line + 1
        except TypeError:  # an unhashable key: the mapping constructor reports it
            break
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml(path) -> Dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(p, None, "file not found")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(p, None, f"not a UTF-8 text file (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          "a search-space YAML is plain text") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as e:
        raise ConfigError(p, str(e.key), f"given twice in one mapping (lines {e.first} and {e.second}); "
                          "keep one") from None
    except yaml.reader.ReaderError as e:
        raise ConfigError(p, None, f"not a text file (character #x{e.character:04x} at offset {e.position})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError(p, None, f"{where}not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(p, None, "expected a mapping of sections at the top level")
    return raw
