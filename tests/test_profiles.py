"""Hardware profiles: schema, sources on every number, clear errors for bad files, `neurodeploy targets`."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from neurodeploy.errors import BadInputError
from neurodeploy.profiles import builtin_names, load_profile, load_profile_file

BUILTIN = ["akida-1000", "loihi", "loihi2", "speck", "spinnaker2", "truenorth", "xylo-audio2", "xylo-audio3", "xylo-imu"]
LOIHI2 = Path(__file__).resolve().parents[1] / "hardware_profiles" / "loihi2.toml"


def test_all_builtin_profiles_validate_and_cite_sources():
    assert builtin_names() == BUILTIN
    for name in BUILTIN:
        p = load_profile(name)
        assert p.name == name
        quantities = p.sources()
        assert len(quantities) >= 8
        for q in quantities:
            assert q["source"] and q["confidence"], (name, q["key"])


def test_loihi2_numbers():
    p = load_profile("loihi2")
    assert p.core_limit("neurons") == 4095
    assert p.core_limit("neuron_groups") == 8
    assert p.core_limit("input_axons") == 16000
    assert p.core_limit("synapse_memory") == 12000
    assert p.systems == [("Oheo Gulch", 1), ("Kapoho Point", 8), ("Hala Point", 1152)]
    assert p.attention["supported"] is True
    assert load_profile("loihi").core_limit("synapse_memory") == 1048576
    assert load_profile("speck").core_limit("kernel_memory")[5] == 65536
    assert load_profile("truenorth").attention["supported"] is False


def _write(tmp_path, text, name="mychip.toml"):
    f = tmp_path / name
    f.write_text(text)
    return f


def test_user_profile_loads(tmp_path):
    text = LOIHI2.read_text().replace('name = "loihi2"', 'name = "my-loihi"').replace("value = 4095,", "value = 2048,", 1)
    p = load_profile_file(_write(tmp_path, text))
    assert p.name == "my-loihi" and p.core_limit("neurons") == 2048


@pytest.mark.parametrize("edit, key", [
    (('neurons = { value = 4095, source = "lava-dl tutorials/lava/lib/dl/netx (REF 3.7; tests/data/loihi2_compiler_tables.json): utilisation percentages are neurons / 4095 (yolo_kp 3,584 = 87.52 %, 2,688 = 65.64 %; mnist 10 = 0.24 %), and PilotNet conv4 [64, 4, 22] takes 3 cores of 8x4x64, not 2 of 16x4x64 = 4,096 neurons", ',
      'neurons = { value = 4095, '), "core.neurons"),                       # a number without its source
    (("value = 16000,", 'value = "many",'), "core.input_axons.value"),     # wrong type
    (('confidence = "measured" }', 'confidence = "pretty sure" }'), "energy.step_energy_pilotnet_mj.confidence"),
    (('cost_model = "loihi2"', 'cost_model = "quantum"'), "cost_model"),
])
def test_bad_profile_names_file_and_key(tmp_path, edit, key):
    text = LOIHI2.read_text()
    assert edit[0] in text
    f = _write(tmp_path, text.replace(edit[0], edit[1], 1))
    with pytest.raises(BadInputError) as exc:
        load_profile_file(f)
    assert str(f) in str(exc.value) and key in str(exc.value)


def test_per_core_list_must_match_core_count(tmp_path):
    text = (Path(LOIHI2).parent / "speck.toml").read_text().replace("16384, 16384, 16384, 32768", "16384, 32768", 1)
    with pytest.raises(BadInputError, match=r"core.kernel_memory.*7 entries.*9"):
        load_profile_file(_write(tmp_path, text))


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="not valid TOML"):
        load_profile_file(_write(tmp_path, "name = [unclosed"))
    with pytest.raises(BadInputError, match="no such file"):
        load_profile_file(tmp_path / "nope.toml")
    with pytest.raises(BadInputError, match="unknown target 'loihi3'"):
        load_profile("loihi3")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "neurodeploy", *args], capture_output=True, text=True)


def test_targets_command(tmp_path):
    r = _cli("targets")
    assert r.returncode == 0, r.stderr
    for name in BUILTIN:
        assert name in r.stdout
    assert "Hala Point (1152)" in r.stdout
    good = _write(tmp_path, LOIHI2.read_text().replace('name = "loihi2"', 'name = "my-loihi"'))
    r = _cli("targets", "--json", "--profile", str(good))
    rows = json.loads(r.stdout)
    assert [x["name"] for x in rows][-1] == "my-loihi"
    bad = _write(tmp_path, LOIHI2.read_text().replace("value = 8,", "value = -8,", 1), "bad.toml")
    r = _cli("targets", "--profile", str(bad))
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.toml" in lines[0] and "core.neuron_groups" in lines[0]


def test_cost_model_keys_are_required(tmp_path):
    text = LOIHI2.read_text()
    start = text.index("synapse_memory = { value = 12000")
    end = text.index("\n", start)
    f = _write(tmp_path, text[:start] + text[end + 1:])
    with pytest.raises(BadInputError, match=r"key core.synapse_memory: required by cost_model 'loihi2'"):
        load_profile_file(f)
