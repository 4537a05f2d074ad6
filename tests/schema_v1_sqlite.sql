-- The schema of the first release (schema version 1, recorded nowhere), as its
-- create_tables() made it in SQLite. The upgrade tests start from this.
CREATE TABLE IF NOT EXISTS "users" ("id" INTEGER NOT NULL PRIMARY KEY, "fitbit_id" VARCHAR(255) NOT NULL, "display_name" VARCHAR(255) NOT NULL, "access_token" TEXT, "refresh_token" TEXT, "expires_at" DATETIME, "scope" VARCHAR(255) NOT NULL, "created_at" DATETIME NOT NULL, "updated_at" DATETIME NOT NULL, "last_sync_at" DATETIME, "rate_remaining" INTEGER, "rate_reset_at" DATETIME);
CREATE UNIQUE INDEX "user_fitbit_id" ON "users" ("fitbit_id");
CREATE TABLE IF NOT EXISTS "apicache" ("id" INTEGER NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "path" VARCHAR(255) NOT NULL, "body" TEXT NOT NULL, "fetched_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE);
CREATE INDEX "apicache_user_id" ON "apicache" ("user_id");
CREATE UNIQUE INDEX "apicache_user_id_path" ON "apicache" ("user_id", "path");
CREATE TABLE IF NOT EXISTS "browsersession" ("key" VARCHAR(255) NOT NULL PRIMARY KEY, "csrf_token" VARCHAR(255) NOT NULL, "user_id" INTEGER, "flashes" TEXT NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE);
CREATE INDEX "browsersession_user_id" ON "browsersession" ("user_id");
CREATE TABLE IF NOT EXISTS "pendingsignin" ("id" INTEGER NOT NULL PRIMARY KEY, "session_id" VARCHAR(255) NOT NULL, "state" VARCHAR(255) NOT NULL, "code_verifier" VARCHAR(255) NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("session_id") REFERENCES "browsersession" ("key") ON DELETE CASCADE);
CREATE UNIQUE INDEX "pendingsignin_session_id" ON "pendingsignin" ("session_id");
INSERT INTO "users" VALUES (1, '7QW2XR', 'Alex R.', 'v1-access', 'v1-refresh', '2026-11-23 20:00:00+00:00', 'activity profile', '2026-11-01 09:00:00+00:00', '2026-11-23 12:00:00+00:00', NULL, 140, NULL);
INSERT INTO "users" VALUES (2, '9KD3MS', 'Sam K.', NULL, NULL, NULL, 'activity', '2026-11-02 09:00:00+00:00', '2026-11-02 09:00:00+00:00', NULL, NULL, NULL);
