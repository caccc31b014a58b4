"""Config validation: every mistake stops the run before any work, with one message that names
the file, the step and the valid choices."""

import pytest

from corpus.config import ConfigError, config_from_dict, load_config
from corpus.pipeline import Runner


def write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def make_input(tmp_path):
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "a.txt").write_text("hello world " * 20)
    return str(tmp_path / "in" / "*.txt")


def test_unknown_step_names_file_step_and_choices(tmp_path):
    p = write(tmp_path, f"steps:\n  - files_reader: {{paths: ['{make_input(tmp_path)}']}}\n  - trafilatra: {{}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "step 2" in msg and "'trafilatra'" in msg
    assert "Did you mean 'trafilatura'" in msg and "minhash_dedup" in msg and "warc_reader" in msg


def test_wrong_parameter_type(tmp_path):
    p = write(tmp_path, "steps:\n  - minhash_dedup: {threshold: high}\n")
    with pytest.raises(ConfigError, match=r"step 1 'minhash_dedup': parameter 'threshold' must be float, got 'high'"):
        load_config(p)


def test_bool_is_not_an_int(tmp_path):
    p = write(tmp_path, "steps:\n  - minhash_dedup: {num_perm: true}\n")
    with pytest.raises(ConfigError, match="'num_perm' must be int"):
        load_config(p)


def test_unknown_parameter_lists_valid_ones(tmp_path):
    p = write(tmp_path, "steps:\n  - language_filter: {language: [en]}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "unknown parameter 'language'" in str(e.value) and "Did you mean 'languages'" in str(e.value)
    assert "min_score" in str(e.value)


def test_missing_input_fails_before_work(tmp_path):
    p = write(tmp_path, f"output_dir: {tmp_path / 'run'}\nsteps:\n  - warc_reader: {{paths: ['{tmp_path}/nothing/*.warc.gz']}}\n")
    cfg = load_config(p)
    with pytest.raises(ConfigError, match=r"step 1 'warc_reader': input '.*nothing/\*\.warc\.gz' matches no file"):
        Runner(cfg)
    assert not (tmp_path / "run").exists()


def test_missing_required_parameter(tmp_path):
    p = write(tmp_path, "steps:\n  - jsonl_reader: {}\n")
    with pytest.raises(ConfigError, match="missing required parameter 'paths'"):
        load_config(p)


def test_malformed_yaml(tmp_path):
    p = write(tmp_path, "steps:\n  - files_reader: {paths: [a\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(p)


def test_yaml_cannot_execute_code(tmp_path):
    marker = tmp_path / "pwned"
    p = write(tmp_path, f"name: !!python/object/apply:os.system ['touch {marker}']\nsteps: [trafilatura]\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(p)
    assert not marker.exists()


def test_unknown_top_level_key(tmp_path):
    p = write(tmp_path, "step:\n  - trafilatura: {}\n")
    with pytest.raises(ConfigError, match="unknown top-level key 'step'. Did you mean 'steps'"):
        load_config(p)


def test_stage_sections_are_validated(tmp_path):
    p = write(tmp_path, "steps: [trafilatura]\ntokenizer: {vocab: 100}\n")
    with pytest.raises(ConfigError, match="tokenizer: unknown key 'vocab'. Did you mean 'vocab_size'"):
        load_config(p)
    p = write(tmp_path, "steps: [trafilatura]\ntokenizer: {}\nshards: {}\ntrain: {n_embd: 100, n_head: 3}\n")
    with pytest.raises(ConfigError, match="n_embd .* multiple of n_head"):
        load_config(p)


def test_set_overrides_any_key(tmp_path):
    inp = make_input(tmp_path)
    raw = {"executor": {"tasks": 1}, "steps": [{"files_reader": {"paths": ["x"]}}, {"minhash_dedup": {}}]}
    cfg = config_from_dict(
        raw, overrides=["executor.tasks=8", f"steps.files_reader.paths=['{inp}']", "steps.1.minhash_dedup.threshold=0.9",
                        "train.max_steps=7", "tokenizer.vocab_size=500", "shards.val_fraction=0.5"]
    )
    assert cfg.executor["tasks"] == 8
    assert cfg.steps[0].params["paths"] == [inp]
    assert cfg.steps[1].params["threshold"] == 0.9
    assert cfg.stages["train"].max_steps == 7 and cfg.stages["tokenizer"].vocab_size == 500


def test_set_type_errors_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="executor.tasks must be an integer"):
        config_from_dict({"steps": ["trafilatura"]}, overrides=["executor.tasks=many"])


def test_unknown_executor_option(tmp_path):
    cfg = config_from_dict({"executor": {"type": "local", "nodes": 3}, "steps": [{"files_reader": {"paths": [make_input(tmp_path)]}}],
                            "output_dir": str(tmp_path / "r")})
    with pytest.raises(ConfigError, match="executor option 'nodes' is unknown for local"):
        Runner(cfg)
    assert not (tmp_path / "r").exists()


def test_name_and_stages_from_the_file(tmp_path):
    p = write(tmp_path, f"name: mine\nsteps:\n  - files_reader: {{paths: ['{make_input(tmp_path)}']}}\n"
                        "tokenizer: {vocab_size: 500}\nshards: {}\n")
    cfg = load_config(p)
    assert cfg.name == "mine" and list(cfg.stages) == ["tokenizer", "shards"]
    with pytest.raises(ConfigError, match="'shards' needs a 'tokenizer' section"):
        load_config(write(tmp_path, f"steps:\n  - files_reader: {{paths: ['{make_input(tmp_path)}']}}\nshards: {{}}\n"))


def test_output_dir_url_is_object_storage_never_a_local_folder(tmp_path, monkeypatch):
    """A run folder at a URL is on that storage (never a local folder named 's3:/bucket/run'); a
    protocol fsspec cannot serve is refused at load."""
    monkeypatch.chdir(tmp_path)
    steps = f"steps:\n  - files_reader: {{paths: ['{make_input(tmp_path)}']}}\n"
    cfg = load_config(write(tmp_path, "output_dir: memory://bucket/run\n" + steps))
    assert str(cfg.output_dir) == "memory://bucket/run" and cfg.output_dir.protocol == "memory"
    with pytest.raises(ConfigError, match="output_dir 'nosuch://bucket/run'.*nosuch"):
        load_config(write(tmp_path, "output_dir: nosuch://bucket/run\n" + steps))
    assert not [p for p in tmp_path.iterdir() if ":" in p.name]


def test_output_dir_file_url_is_the_local_folder(tmp_path):
    p = write(tmp_path, f"output_dir: file://{tmp_path}/run\nsteps:\n  - files_reader: {{paths: ['{make_input(tmp_path)}']}}\n")
    assert load_config(p).output_dir == tmp_path / "run"
