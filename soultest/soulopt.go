package soultest

// SoulOption is the `soul` global option of a test's own Caddyfile: the
// shared settings read from the environment the way the production
// Caddyfile reads them (Start's environment provides DEV_MODE, SECRET_KEY,
// SQLITE_PATH, the URLs and, behind PgBouncer,
// DATABASE_PREPARED_STATEMENTS). Put it in the global options block.
const SoulOption = `soul {
		dev_mode {$DEV_MODE}
		secret_key {env.SECRET_KEY}
		database_url {env.DATABASE_URL}
		database_prepared_statements {$DATABASE_PREPARED_STATEMENTS}
		sqlite_path {$SQLITE_PATH}
		redis_url {env.REDIS_URL}
	}`
