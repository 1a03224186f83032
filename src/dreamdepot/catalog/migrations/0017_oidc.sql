-- Schema 17: accounts signed in through an OpenID Connect provider, by the provider's
-- subject identifier (stable, unlike a name or an e-mail address).

ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users(oidc_subject) WHERE oidc_subject IS NOT NULL;
