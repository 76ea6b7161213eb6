"""Rules as data: schema, loader, compiler/engine, and example runner."""
