"""The Streamlit chat UI."""
