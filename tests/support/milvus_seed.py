"""Seeds test data into a real Milvus with pymilvus (run with the venv made by scripts/test).

    milvus_seed.py URI create-collection DB NAME [ROWS]

Creates database DB when missing, then collection NAME (int64 pk, float vector dim 8,
dynamic field on) and inserts ROWS rows (default 0). Prints `ok` on success.
"""
import sys

from pymilvus import (Collection, CollectionSchema, DataType, FieldSchema, connections, db,
                      utility)


def create_collection(uri, db_name, name, rows):
    alias = "seed"
    connections.connect(alias=alias, uri=uri)
    if db_name != "default" and db_name not in db.list_database(using=alias):
        db.create_database(db_name, using=alias)
    connections.disconnect(alias)
    connections.connect(alias=alias, uri=uri, db_name=db_name)
    if utility.has_collection(name, using=alias):
        raise SystemExit(f"collection {db_name}.{name} already exists")
    schema = CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=8),
        ],
        enable_dynamic_field=True,
    )
    collection = Collection(name, schema, using=alias, shards_num=1)
    if rows:
        collection.insert([[i for i in range(rows)], [[float(i)] * 8 for i in range(rows)]])
    print("ok")


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    uri, command, *args = argv[1:]
    if command == "create-collection":
        create_collection(uri, args[0], args[1], int(args[2]) if len(args) > 2 else 0)
    else:
        raise SystemExit(f"unknown command {command}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
