"""Seeds test data into a real Milvus with pymilvus (run with the venv made by scripts/test).

    milvus_seed.py URI create-collection DB NAME [ROWS]
    milvus_seed.py URI create-rich DB NAME ROWS
    milvus_seed.py URI drop-collection DB NAME
    milvus_seed.py URI create-many DB PREFIX COUNT
    milvus_seed.py URI dump DB NAME
    milvus_seed.py URI create-wide DB NAME ROWS DIM [SEGMENTS]
    milvus_seed.py URI create-rbac USER PASSWORD ROLE DB COLLECTION
    milvus_seed.py URI rbac
    milvus_seed.py URI can-login USER PASSWORD
    milvus_seed.py URI create-partition-key DB NAME ROWS
    milvus_seed.py URI count-where DB NAME EXPR
    milvus_seed.py URI create-counted DB NAME
    milvus_seed.py URI insert-more DB NAME START COUNT
    milvus_seed.py URI add-alias DB NAME ALIAS
    milvus_seed.py URI aliases DB NAME

create-collection: creates database DB when missing, then collection NAME (int64 pk, float
vector dim 8, dynamic field on) and inserts ROWS rows (default 0).
create-rich: the same shape with 2 shards, a VARCHAR field, partition `p1` beside `_default`,
ROWS rows in each partition with a dynamic field `extra`, the first 3 rows of each partition
deleted, an IVF_FLAT index, and the TTL and mmap properties set (a backup must leave them out).
dump: prints one JSON object: the collection's shard count, partitions, indexes, whether it
is loaded, and every row (sorted by id; dynamic fields included), loading it to read (with a
FLAT index when it has none).
create-wide: collection NAME (int64 pk, float vector dim DIM of random values) with ROWS rows
inserted in ~16 MB batches and flushed after each SEGMENTS-th of them (default 1), so it holds
SEGMENTS sealed segments: ROWS x DIM x 4 bytes of binlogs (benchmarks).
create-many: COUNT collections PREFIX0000... (int64 pk, vector dim 4); every 100th gets 3 rows.
create-rbac: user USER with PASSWORD, role ROLE granted Search on DB.COLLECTION, USER in ROLE.
rbac: prints users and roles (with members and grants) as JSON.
can-login: exits 0 when USER / PASSWORD sign in, 1 when refused.
create-partition-key: NAME with a VARCHAR partition key `tenant` (11 tenants) over 16
partitions, ROWS rows, ids 0-2 and one that never existed deleted, a FLAT index.
count-where: prints count(*) of the rows matching EXPR (loads NAME).
create-counted: 300 rows in three segments, deletes of existing and never-existing ids, a
compaction, more deletes, a deleted id inserted again; prints count(*) (Strong).
insert-more: inserts COUNT rows from id START and deletes ids 4 and 5 (not flushed).
add-alias / aliases: gives NAME the alias ALIAS / prints its aliases as a JSON list.
Prints `ok` on success. With MILVUS_TOKEN set (`user:password`), it signs in (a Milvus with
authorization on); with MILVUS_CA_PEM set (a file), it speaks TLS, trusting that CA (URI
https://...).
"""
import json
import os
import sys

from pymilvus import (Collection, CollectionSchema, DataType, FieldSchema, connections, db,
                      utility)


def tls():
    """pymilvus's TLS arguments when MILVUS_CA_PEM names a CA file."""
    ca = os.environ.get("MILVUS_CA_PEM")
    return {"secure": True, "server_pem_path": ca, "server_name": "localhost"} if ca else {}


def connect(uri, db_name, alias="seed"):
    token = os.environ.get("MILVUS_TOKEN", "")
    connections.connect(alias=alias, uri=uri, token=token, timeout=60, **tls())
    if db_name != "default" and db_name not in db.list_database(using=alias):
        db.create_database(db_name, using=alias)
    connections.disconnect(alias)
    connections.connect(alias=alias, uri=uri, token=token, db_name=db_name, timeout=60, **tls())
    return alias


def create_collection(uri, db_name, name, rows):
    alias = connect(uri, db_name)
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


def create_rich(uri, db_name, name, rows):
    alias = connect(uri, db_name)
    if utility.has_collection(name, using=alias):
        raise SystemExit(f"collection {db_name}.{name} already exists")
    schema = CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("title", DataType.VARCHAR, max_length=64),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=8),
        ],
        description="rich test collection",
        enable_dynamic_field=True,
    )
    collection = Collection(name, schema, using=alias, shards_num=2)
    collection.create_partition("p1")
    for offset, partition in ((0, "_default"), (rows, "p1")):
        ids = list(range(offset, offset + rows))
        collection.insert(
            [{"id": i, "title": f"t{i}", "vec": [float(i % 7)] * 8, "extra": i * 10} for i in ids],
            partition_name=partition,
        )
        collection.delete(f"id in {ids[:3]}")
    collection.create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2",
                                    "params": {"nlist": 16}})
    collection.set_properties({"collection.ttl.seconds": 86400})
    collection.set_properties({"mmap.enabled": True})
    print("ok")


def create_partition_key(uri, db_name, name, rows):
    """A partition-key collection: VARCHAR key over 16 partitions, 3 existing ids deleted and
    one that never existed."""
    alias = connect(uri, db_name)
    if utility.has_collection(name, using=alias):
        raise SystemExit(f"collection {db_name}.{name} already exists")
    schema = CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("tenant", DataType.VARCHAR, max_length=32, is_partition_key=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=8),
        ],
        enable_dynamic_field=True,
    )
    collection = Collection(name, schema, using=alias, shards_num=1, num_partitions=16)
    collection.insert([{"id": i, "tenant": f"t{i % 11}", "vec": [float(i % 5)] * 8}
                       for i in range(rows)])
    collection.delete(f"id in [0, 1, 2, {rows + 1000}]")
    collection.create_index("vec", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    print("ok")


def create_counted(uri, db_name, name):
    """300 rows in three flushed segments; deletes of 3 existing ids and of 2 that never
    existed; a compaction; 2 more deletes; a deleted id inserted again. Prints count(*)."""
    alias = connect(uri, db_name)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=8),
    ])
    collection = Collection(name, schema, using=alias, shards_num=1)
    for batch in range(3):
        ids = list(range(batch * 100, batch * 100 + 100))
        collection.insert([ids, [[float(i % 9)] * 8 for i in ids]])
        collection.flush()
    collection.delete("id in [1, 2, 3, 100001, 100002]")
    collection.flush()
    collection.compact()
    collection.wait_for_compaction_completed()
    collection.delete("id in [150, 151]")
    collection.insert([[1], [[0.5] * 8]])
    collection.flush()
    collection.create_index("vec", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    collection.load()
    print(collection.query("", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"])


def insert_more(uri, db_name, name, start, count):
    alias = connect(uri, db_name)
    collection = Collection(name, using=alias)
    ids = list(range(start, start + count))
    collection.insert([ids, [[0.25] * 8 for _ in ids]])
    collection.delete(f"id in [4, 5]")
    print("ok")


def count_where(uri, db_name, name, expr):
    alias = connect(uri, db_name)
    collection = Collection(name, using=alias)
    collection.load()
    print(collection.query(expr, output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"])


def add_alias(uri, db_name, name, new_alias):
    alias = connect(uri, db_name)
    utility.create_alias(name, new_alias, using=alias)
    print("ok")


def aliases(uri, db_name, name):
    import json
    alias = connect(uri, db_name)
    print(json.dumps(sorted(Collection(name, using=alias).aliases)))


def create_many(uri, db_name, prefix, count):
    alias = connect(uri, db_name)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=4),
    ])
    for i in range(count):
        collection = Collection(f"{prefix}{i:04d}", schema, using=alias, shards_num=1)
        if i % 100 == 0:
            collection.insert([[1, 2, 3], [[float(i)] * 4] * 3])
    print("ok")


def dump(uri, db_name, name):
    import json
    alias = connect(uri, db_name)
    collection = Collection(name, using=alias)
    loaded = str(utility.load_state(name, using=alias)) == "Loaded"
    indexes = sorted(
        [{"field": i.field_name, "type": i.params.get("index_type")} for i in collection.indexes],
        key=lambda i: i["field"])
    if not collection.indexes:
        collection.create_index("vec", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    collection.load()
    rows = collection.query("id >= 0", output_fields=["*"], limit=16384)
    rows = [{k: (list(map(float, v)) if k == "vec" else v) for k, v in r.items()} for r in rows]
    rows.sort(key=lambda r: r["id"])
    described = collection.describe()
    print(json.dumps({
        "shards": described.get("num_shards", described.get("shards_num")),
        "partitions": sorted(p.name for p in collection.partitions),
        "indexes": indexes,
        "loaded": loaded,
        "rows": rows,
    }, sort_keys=True))


def drop_collection(uri, db_name, name):
    alias = connect(uri, db_name)
    utility.drop_collection(name, using=alias)
    print("ok")


def create_wide(uri, db_name, name, rows, dim, segments=1):
    import numpy as np
    alias = connect(uri, db_name)
    if utility.has_collection(name, using=alias):
        raise SystemExit(f"collection {db_name}.{name} already exists")
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=dim),
    ])
    collection = Collection(name, schema, using=alias, shards_num=1)
    batch = max(1, (16 << 20) // (dim * 4))
    per_segment = -(-rows // segments)
    rng = np.random.default_rng(7)
    for first in range(0, rows, per_segment):
        last = min(rows, first + per_segment)
        for start in range(first, last, batch):
            n = min(batch, last - start)
            collection.insert([list(range(start, start + n)), rng.random((n, dim), dtype=np.float32)])
        collection.flush()  # seals what was inserted: one segment per chunk
    print("ok")


def create_rbac(uri, user, password, role_name, db_name, collection):
    from pymilvus import Role
    alias = connect(uri, db_name)
    utility.create_user(user, password, using=alias)
    role = Role(role_name, using=alias)
    role.create()
    role.grant("Collection", collection, "Search")
    role.add_user(user)
    print("ok")


def rbac(uri):
    from pymilvus import Role
    alias = connect(uri, "default")
    users = sorted(utility.list_usernames(using=alias))
    roles = {}
    for item in utility.list_roles(include_user_info=True, using=alias).groups:
        grants = []
        for name in db.list_database(using=alias):
            connections.disconnect(alias)
            connections.connect(alias=alias, uri=uri, token=os.environ.get("MILVUS_TOKEN", ""),
                                db_name=name, **tls())
            for g in Role(item.role_name, using=alias).list_grants(db_name=name).groups:
                grants.append([g.object, g.object_name, g.privilege, g.db_name])
        roles[item.role_name] = {"users": sorted(item.users), "grants": sorted(grants)}
    print(json.dumps({"users": users, "roles": roles}, sort_keys=True))


def can_login(uri, user, password):
    try:
        # Signing in is all that is checked: a new user may hold no privilege to list anything.
        connections.connect(alias="login", uri=uri, token=f"{user}:{password}", timeout=20,
                            **tls())
        utility.get_server_version(using="login")
    except Exception as e:  # refused: wrong password or unknown user
        print(f"refused: {e}")
        raise SystemExit(1)
    print("ok")


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    uri, command, *args = argv[1:]
    if command == "create-collection":
        create_collection(uri, args[0], args[1], int(args[2]) if len(args) > 2 else 0)
    elif command == "create-rich":
        create_rich(uri, args[0], args[1], int(args[2]))
    elif command == "create-wide":
        create_wide(uri, args[0], args[1], int(args[2]), int(args[3]),
                    int(args[4]) if len(args) > 4 else 1)
    elif command == "create-partition-key":
        create_partition_key(uri, args[0], args[1], int(args[2]))
    elif command == "create-counted":
        create_counted(uri, args[0], args[1])
    elif command == "insert-more":
        insert_more(uri, args[0], args[1], int(args[2]), int(args[3]))
    elif command == "count-where":
        count_where(uri, args[0], args[1], args[2])
    elif command == "add-alias":
        add_alias(uri, args[0], args[1], args[2])
    elif command == "aliases":
        aliases(uri, args[0], args[1])
    elif command == "create-many":
        create_many(uri, args[0], args[1], int(args[2]))
    elif command == "dump":
        dump(uri, args[0], args[1])
    elif command == "drop-collection":
        drop_collection(uri, args[0], args[1])
    elif command == "create-rbac":
        create_rbac(uri, *args[:5])
    elif command == "rbac":
        rbac(uri)
    elif command == "can-login":
        can_login(uri, args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
