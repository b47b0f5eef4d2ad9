"""What `verify`, `mcu` and `bench` found, for people and for scripts.

- `schema`: report.json's versioned, typed layout, validated on every read;
- `store`: read and merge report.json under the export directory's lock;
- `markdown`: report.md, the model card with tables and plots.
"""
