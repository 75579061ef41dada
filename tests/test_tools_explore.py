"""edexplore: the pieces that need no browser, and an end-to-end test in headless Chromium.

The end-to-end test needs streamlit (pip install 'fairtoolkit[streamlit]'), selenium (pip install selenium) and
Debian's chromium + chromium-driver (apt-get install -y chromium chromium-driver); it skips, saying which is missing,
without them. Run as a script, this file takes the README's screenshot of any dataset:

    python tests/test_tools_explore.py --out docs/edexplore.png -- --dataset fairkit.data.MNIST --params "{split: test}"
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import yaml

from edflow.config import ConfigError
from edflow.data.dataset import DatasetMixin
from edflow.explore import (image_layout, label_summaries, load_datasets, main, split_example, streamlit_command,
                            parse_args, field_rows, summarize_label, to_display_image)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
SERVER_START_SECONDS = 90
PAGE_LOAD_SECONDS = 60


class PairedShapes(DatasetMixin):
    """Pairs as ColorfulMNIST / FactorCelebA hold them: two images per example, a class and binary attributes.

    image1 is a colour image whose red channel encodes the index; image2 a grey image of constant brightness."""
    class_names = ["circle", "square", "triangle"]
    attribute_names = ["red", "large"]

    def __init__(self, n: int = 12, config=None):
        self.n = n
        self.labels = {"class": np.arange(n) % 3, "attributes": np.stack([np.arange(n) % 2, np.arange(n) % 4 == 0], 1)}

    def get_example(self, i):
        return {"image1": pair_image(i, 0), "image2": pair_image(i, 1), "note": f"pair {i}"}

    def __len__(self):
        return self.n


def pair_image(i: int, which: int) -> np.ndarray:
    if which == 1:
        return np.full((1, 16, 16), -0.5 + 0.1 * i, dtype=np.float32)
    image = np.full((3, 16, 16), -1.0, dtype=np.float32)
    image[0] = np.linspace(-1, 1, 16)[None, :] * (i + 1) / 12  # a ramp whose slope depends on the index
    image[2, :8] = 1.0
    return image


# --- without a browser -------------------------------------------------------------------------------------------
def test_image_layout_finds_channels_first_and_last_images_only():
    assert image_layout(np.zeros((3, 8, 8), np.float32)) == "CHW"
    assert image_layout(np.zeros((1, 28, 28), np.float32)) == "CHW"
    assert image_layout(np.zeros((8, 8, 3), np.uint8)) == "HWC"
    assert image_layout(np.zeros((40,), np.int64)) is None          # CelebA attributes
    assert image_layout(np.zeros((2, 8, 8), np.float32)) is None    # two channels: not an image
    assert image_layout(np.zeros((3, 2, 2), np.float32)) is None    # too small to be one
    assert image_layout(np.array("text")) is None


def test_display_image_maps_minus_one_to_black_and_one_to_white_and_enlarges_by_whole_factors():
    image = np.array([[[-1.0, 0.0, 1.0, 2.0]] * 4], dtype=np.float32)  # (1, 4, 4); 2.0 is clipped
    shown = to_display_image(image, side=8)
    assert shown.shape == (8, 8) and shown.dtype == np.uint8
    np.testing.assert_array_equal(shown[0], [0, 0, 128, 128, 255, 255, 255, 255])
    rgb = to_display_image(np.zeros((5, 5, 3), np.uint8) + 7, side=4)  # integer images are 0..255 already
    assert rgb.shape == (5, 5, 3) and (rgb == 7).all()
    with pytest.raises(ValueError, match="not an image"):
        to_display_image(np.zeros((10,)))


def test_split_example_renders_both_images_of_a_pair_and_lists_the_other_keys():
    dataset = PairedShapes()
    view = split_example(dataset[4])
    assert list(view.images) == ["image1", "image2"]
    np.testing.assert_array_equal(view.images["image1"], pair_image(4, 0))
    rows = {row["key"]: row for row in field_rows(dataset, view.fields)}
    assert set(rows) == {"class", "attributes", "note", "index_"}
    assert rows["class"]["value"] == "1 (square)"
    assert rows["attributes"]["value"] == "[0, 1]  [large]"
    assert rows["note"]["value"] == "pair 4"


def test_nested_examples_and_torch_tensors_are_flattened():
    torch = pytest.importorskip("torch")
    view = split_example({"pair": {"a": torch.zeros(3, 8, 8), "b": torch.ones(1, 8, 8, dtype=torch.bfloat16)},
                          "y": torch.tensor(2)})
    assert list(view.images) == ["pair/a", "pair/b"] and view.fields["y"] == 2
    assert view.images["pair/b"].dtype == np.float32 and (view.images["pair/b"] == 1).all()


def test_label_statistics_match_numpy_counts_and_means():
    dataset = PairedShapes(n=10)
    summaries = {s.name: s for s in label_summaries(dataset)}
    classes = summaries["class"]
    assert classes.kind == "discrete"
    expected = np.bincount(np.arange(10) % 3)
    assert classes.counts == {"0 (circle)": expected[0], "1 (square)": expected[1], "2 (triangle)": expected[2]}
    assert [row["fraction"] for row in classes.rows] == pytest.approx(expected / 10, abs=1e-4)
    attributes = summaries["attributes"]
    assert attributes.kind == "columns" and [r["column"] for r in attributes.rows] == ["red", "large"]
    means = dataset.labels["attributes"].mean(0)
    assert [r["mean"] for r in attributes.rows] == pytest.approx(means, abs=1e-4)
    continuous = summarize_label("score", np.array([1.0, 2.0, 4.0]))
    assert continuous.kind == "continuous"
    assert continuous.rows[0]["mean"] == pytest.approx(7 / 3, abs=1e-4)
    assert continuous.rows[0]["std"] == pytest.approx(np.std([1.0, 2.0, 4.0]), abs=1e-4)
    assert summarize_label("image", np.zeros((5, 1, 8, 8))).kind == "other"  # images stored as labels


def test_datasets_come_from_a_class_path_or_from_the_config(tmp_path):
    by_path = load_datasets(["--dataset", "test_tools_explore.PairedShapes", "--params", "{n: 5}"])
    assert list(by_path) == ["PairedShapes"] and len(by_path["PairedShapes"]) == 5
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"datasets": {
        "train": "test_tools_explore.PairedShapes",
        "validation": {"target": "test_tools_explore.PairedShapes", "params": {"n": 3}}}}))
    from_config = load_datasets(["-b", str(config)])
    assert {name: len(d) for name, d in from_config.items()} == {"train": 12, "validation": 3}
    one = load_datasets(["-b", str(config), "--dataset", "validation"])
    assert list(one) == ["validation"]
    overridden = load_datasets(["-b", str(config), "--dataset", "validation", "datasets.validation.params.n=7"])
    assert len(overridden["validation"]) == 7


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="say what to browse"):
        parse_args([])
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"train": "test_tools_explore.PairedShapes"}}))
    with pytest.raises(ConfigError, match=r"neither a class path .* the config has \['train'\]"):
        load_datasets(["-b", str(config), "--dataset", "valid"])
    with pytest.raises(ConfigError, match="--params goes with a class path"):
        load_datasets(["-b", str(config), "--dataset", "train", "--params", "{n: 3}"])
    with pytest.raises(ConfigError, match="YAML mapping"):
        load_datasets(["--dataset", "test_tools_explore.PairedShapes", "--params", "[1, 2]"])
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "test_tools_explore.NoSuchDataset"])
    assert exit_info.value.code == 2
    assert "has no attribute 'NoSuchDataset'" in capsys.readouterr().err


def test_server_binds_to_loopback_unless_told_otherwise():
    args, _ = parse_args(["--dataset", "a.B"])
    command = streamlit_command(args, ["--dataset", "a.B"])
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert "--server.port" not in command and command[-2:] == ["--dataset", "a.B"]
    args, _ = parse_args(["--dataset", "a.B", "--host", "0.0.0.0", "--port", "8600"])
    command = streamlit_command(args, [])
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
    assert command[command.index("--server.port") + 1] == "8600"


# --- in the browser ----------------------------------------------------------------------------------------------
def browser_requirements() -> tuple[str, str]:
    """Chromium and chromedriver paths, or a skip that says what to install."""
    if importlib.util.find_spec("streamlit") is None:
        pytest.skip("streamlit is not installed: pip install 'fairtoolkit[streamlit]'")
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("selenium is not installed: pip install selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium chromium-driver")
    return chromium, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def edexplore_server(argv: list[str], log_path: str):
    """``edexplore <argv>`` on a free loopback port; yields its URL once streamlit answers its health check."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, TESTS, os.environ.get("PYTHONPATH", "")])}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "edflow.explore", *argv, "--port", str(port)],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(url: str, process: subprocess.Popen, log_path: str) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"edexplore exited with {process.returncode}:\n{open(log_path).read()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        time.sleep(0.3)
    raise AssertionError(f"edexplore did not answer at {url} within {SERVER_START_SECONDS} s:\n{open(log_path).read()}")


@contextlib.contextmanager
def headless_chromium(chromium: str, driver_path: str, width: int = 1280, height: int = 1400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + (f"--window-size={width},{height}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait_for_text(driver, *texts: str) -> None:
    """Wait until every one of ``texts`` is on the page (streamlit draws the page piece by piece)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, PAGE_LOAD_SECONDS).until(lambda d: all(t in page_text(d) for t in texts),
                                                   message=f"not all of {texts} appeared on the page")


def shown_images(driver) -> list[np.ndarray]:
    """The images the page shows (streamlit's /media/ files), decoded, in page order."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    images = []
    for element in driver.find_elements(By.CSS_SELECTOR, "img"):
        source = element.get_attribute("src") or ""
        if "/media/" in source:
            with urllib.request.urlopen(source, timeout=10) as response:
                images.append(np.asarray(Image.open(io.BytesIO(response.read()))))
    return images


def assert_shows_example(driver, index: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    dataset = PairedShapes()
    # the class, by name, in the labels table
    wait_for_text(driver, f"Example {index}", f"pair {index}", f"{index % 3} ({dataset.class_names[index % 3]})")
    expected = [to_display_image(pair_image(index, 0)), to_display_image(pair_image(index, 1))]
    WebDriverWait(driver, PAGE_LOAD_SECONDS).until(lambda d: len(shown_images(d)) == 2)
    for shown, wanted in zip(shown_images(driver), expected):
        shown = shown[..., :3] if shown.ndim == 3 and wanted.ndim == 3 else shown
        np.testing.assert_array_equal(shown.reshape(wanted.shape), wanted)
    text = page_text(driver)
    assert "image1 float32 (3, 16, 16)" in text and "image2 float32 (1, 16, 16)" in text


def test_edexplore_shows_images_labels_and_statistics_in_headless_chromium(tmp_path):
    chromium, driver_path = browser_requirements()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    argv = ["--dataset", "test_tools_explore.PairedShapes"]
    with edexplore_server(argv, str(tmp_path / "edexplore.log")) as url, \
            headless_chromium(chromium, driver_path) as driver:
        driver.get(url)
        # size, and the label statistics: class counts by name, attribute columns by name
        wait_for_text(driver, "test_tools_explore.PairedShapes: 12 examples", "Dataset size\n12", "Label statistics",
                      "class: int64 (12,), discrete", "0 (circle)\n4\n0.3333", "attributes: int64 (12, 2), columns",
                      "large\n0.2500")
        assert_shows_example(driver, 0)
        screenshot = tmp_path / "edexplore.png"
        assert driver.save_screenshot(str(screenshot))
        from PIL import Image

        assert Image.open(screenshot).size[0] >= 1000
        slider = driver.find_element(By.CSS_SELECTOR, 'input[type="range"], [role="slider"]')  # the index slider
        slider.send_keys(Keys.RIGHT)
        assert_shows_example(driver, 1)


def take_screenshot(argv: list[str], out: str, width: int = 1280, height: int = 1000) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with edexplore_server(argv, out + ".log") as url, headless_chromium(chromium, shutil.which("chromedriver"),
                                                                        width, height) as driver:
        driver.get(url)
        wait_for_text(driver, "Label statistics")
        time.sleep(2)  # let charts finish drawing
        driver.save_screenshot(out)
    os.remove(out + ".log")


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(description="screenshot of edexplore in headless Chromium")
    cli.add_argument("--out", default="docs/edexplore.png")
    cli.add_argument("edexplore_args", nargs=argparse.REMAINDER)
    options = cli.parse_args()
    take_screenshot([a for a in options.edexplore_args if a != "--"], options.out)
    print(f"wrote {options.out}")
