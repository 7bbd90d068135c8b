"""Cross-modal search over an exported ALIGN model: faiss index build, query and a local web page."""
