def test_database_is_migrated(db):
    assert db.execute("select count(*) from api.events").fetchone() == (0,)
