"""The streamlit app behind ``edexplore``; started by ``edflow.explore.main`` as
``streamlit run explore_app.py -- <edexplore arguments>``."""
from __future__ import annotations

import os
import sys

# streamlit puts this script's folder first on sys.path, where edflow's config.py, util.py, ... would shadow
# top-level modules of the same names that a dataset may import.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import streamlit as st  # noqa: E402

from edflow.explore import (field_rows, label_summaries, load_datasets, parse_args, split_example,  # noqa: E402
                            to_display_image)


@st.cache_resource(show_spinner="loading the dataset ...")
def cached_datasets(argv: tuple[str, ...]) -> dict:
    return load_datasets(list(argv))


@st.cache_data(show_spinner="computing label statistics ...")
def cached_summaries(argv: tuple[str, ...], name: str) -> list:
    return label_summaries(cached_datasets(argv)[name])


def class_path(dataset) -> str:
    return f"{type(dataset).__module__}.{type(dataset).__qualname__}"


def show_example(dataset, index: int) -> None:
    view = split_example(dataset[index])
    st.subheader(f"Example {index}")
    if view.images:
        for column, (key, image) in zip(st.columns(len(view.images)), view.images.items()):
            caption = f"{key}  {image.dtype} {tuple(image.shape)}  [{image.min():.3g}, {image.max():.3g}]"
            # PNG, not streamlit's default JPEG for colour images: the pixels shown are the pixels stored
            column.image(to_display_image(image), caption=caption, output_format="PNG")
    else:
        st.info("this example holds no image-like array ((C, H, W) or (H, W, C) with C in 1, 3)")
    st.markdown("**Labels and keys**")
    st.table(field_rows(dataset, view.fields), hide_index=True)


def show_label_statistics(summaries: list) -> None:
    st.subheader("Label statistics")
    if not summaries:
        st.info("the dataset has no `labels`")
    for summary in summaries:
        st.markdown(f"**{summary.name}**: {summary.dtype} {summary.shape}, {summary.kind}")
        if summary.counts and len(summary.counts) > 1:
            st.bar_chart({"count": summary.counts}, height=180)
        if summary.rows:
            st.table(summary.rows, hide_index=True)


def app() -> None:
    argv = tuple(sys.argv[1:])
    args, _ = parse_args(list(argv))
    st.set_page_config(page_title="edexplore", layout="wide")
    datasets = cached_datasets(argv)
    name = st.sidebar.radio("Dataset", list(datasets)) if len(datasets) > 1 else next(iter(datasets))
    dataset = datasets[name]
    size = len(dataset)
    st.title(f"edexplore: {name}")
    st.caption(f"{class_path(dataset)}: {size} examples")
    if size == 0:
        st.warning("the dataset is empty")
        return
    index = st.sidebar.slider("Index", 0, max(size - 1, 1), min(max(args.index, 0), size - 1), key=f"index/{name}")
    st.sidebar.metric("Dataset size", size)
    show_example(dataset, min(index, size - 1))
    show_label_statistics(cached_summaries(argv, name))


app()
