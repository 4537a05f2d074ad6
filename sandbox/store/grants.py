"""What each Allow granted, and everything issued from it: its code, its access tokens
and its refresh tokens. Revoking a grant, or replaying its code, forgets its tokens."""

from .database import epoch, moment_of, now
from .records import AccessToken, AuthorizationCode, Grant


class Grants:
    def __init__(self, db):
        self.db = db

    def add_code(self, code, issued):
        grant = issued.grant
        with self.db.transaction() as sql:
            # A grant widened by a later consent (Google's include_granted_scopes) is there.
            sql.execute(
                "INSERT INTO grants VALUES (?, ?, ?, ?) ON CONFLICT (grant_id) "
                "DO UPDATE SET scope = excluded.scope",
                (grant.grant_id, grant.client_id, grant.user_id, grant.scope),
            )
            sql.execute(
                "INSERT INTO codes (code, grant_id, redirect_uri, code_challenge, issued_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    code,
                    grant.grant_id,
                    issued.redirect_uri,
                    issued.code_challenge,
                    epoch(issued.issued_at),
                ),
            )

    def redeem_code(self, code):
        """(the code, replayed): the code the first time it is redeemed; None and True on
        any later try, when every token issued from it has just been revoked."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT grant_id, redirect_uri, code_challenge, issued_at, redeemed FROM codes "
                "WHERE code = ?",
                (code,),
            ).fetchone()
            if row is None:
                return None, False
            grant_id, redirect_uri, challenge, issued_at, redeemed = row
            if redeemed:
                self._forget(sql, "grant_id = ?", (grant_id,))
                return None, True
            sql.execute("UPDATE codes SET redeemed = 1 WHERE code = ?", (code,))
            grant = self._grant(sql, grant_id)
        return AuthorizationCode(grant, redirect_uri, challenge, moment_of(issued_at)), False

    def add_tokens(self, grant, access, refresh, expires_at):
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT INTO access_tokens VALUES (?, ?, ?)",
                (access, grant.grant_id, epoch(expires_at)),
            )
            if refresh is not None:  # Google gives none on a refresh, or without offline
                sql.execute("INSERT INTO refresh_tokens VALUES (?, ?)", (refresh, grant.grant_id))
                sql.execute("INSERT INTO refresh_issued VALUES (?, ?)", (refresh, epoch(now())))

    def access_token(self, token):
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT grant_id, expires_at FROM access_tokens WHERE token = ?", (token,)
            ).fetchone()
            return AccessToken(self._grant(sql, row[0]), moment_of(row[1])) if row else None

    def spend_refresh_token(self, token, client_id):
        """The grant of `client_id`'s refresh token, the token deleted in the same
        transaction: of two workers spending it at once, one gets the grant and the other
        None. Another app's token is left as it was."""
        with self.db.transaction() as sql:
            grant = self._refresh_grant(sql, token, client_id)
            if grant is not None:
                sql.execute("DELETE FROM refresh_tokens WHERE token = ?", (token,))
            return grant

    def refresh_grant(self, token, client_id, issued_after):
        """The grant of `client_id`'s refresh token if it was issued after `issued_after`: it
        stays valid until then (Google's are reused). Otherwise None."""
        with self.db.transaction() as sql:
            grant = self._refresh_grant(sql, token, client_id)
            issued = sql.execute(
                "SELECT issued_at FROM refresh_issued WHERE token = ?", (token,)
            ).fetchone()
        if grant is None or issued is None or issued[0] <= epoch(issued_after):
            return None
        return grant

    def _refresh_grant(self, sql, token, client_id):
        row = sql.execute(
            "SELECT grant_id FROM refresh_tokens WHERE token = ? AND grant_id IN "
            "(SELECT grant_id FROM grants WHERE client_id = ?)",
            (token, client_id),
        ).fetchone()
        return self._grant(sql, row[0]) if row else None

    def has_refresh_token(self, client_id, user_id, issued_after):
        """True if the user has a refresh token for the app issued after `issued_after`."""
        with self.db.transaction() as sql:
            return bool(
                sql.execute(
                    "SELECT 1 FROM refresh_tokens JOIN grants USING (grant_id) "
                    "JOIN refresh_issued USING (token) "
                    "WHERE client_id = ? AND user_id = ? AND issued_at > ?",
                    (client_id, user_id, epoch(issued_after)),
                ).fetchone()
            )

    def widened(self, client_id, user_id, scopes):
        """Google's include_granted_scopes: the user's grant to this client that still has a
        refresh token (the newest, if several), with `scopes` added to its scope; None
        when there is none. Its tokens then read the new scopes too."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT grant_id, scope FROM grants WHERE client_id = ? AND user_id = ? AND "
                "grant_id IN (SELECT grant_id FROM refresh_tokens) ORDER BY rowid DESC LIMIT 1",
                (client_id, user_id),
            ).fetchone()
            if row is None:
                return None
            grant_id, scope = row
            union = " ".join(dict.fromkeys([*scope.split(), *scopes]))
            sql.execute("UPDATE grants SET scope = ? WHERE grant_id = ?", (union, grant_id))
        return Grant(client_id, user_id, union, grant_id)

    def live(self, user_id):
        """[(client_id, scope)] of the user's grants that still have a token: the apps that
        hear of their changes."""
        with self.db.transaction() as sql:
            return sql.execute(
                "SELECT DISTINCT client_id, scope FROM grants WHERE user_id = ? AND grant_id IN "
                "(SELECT grant_id FROM access_tokens UNION SELECT grant_id FROM refresh_tokens)",
                (user_id,),
            ).fetchall()

    def forget_grant(self, grant_id):
        """Revoke every token of one grant."""
        with self.db.transaction() as sql:
            self._forget(sql, "grant_id = ?", (grant_id,))

    def grant_of(self, token):
        """The grant an access or refresh token belongs to, or None."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT grant_id FROM access_tokens WHERE token = ? UNION "
                "SELECT grant_id FROM refresh_tokens WHERE token = ?",
                (token, token),
            ).fetchone()
            return self._grant(sql, row[0]) if row else None

    def forget_user(self, client_id, user_id):
        """Revoke every token of one user for one app."""
        with self.db.transaction() as sql:
            self._forget(
                sql,
                "grant_id IN (SELECT grant_id FROM grants WHERE client_id = ? AND user_id = ?)",
                (client_id, user_id),
            )

    @staticmethod
    def _forget(sql, where, params):
        for table in ("access_tokens", "refresh_tokens"):
            sql.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608

    @staticmethod
    def _grant(sql, grant_id):
        client_id, user_id, scope = sql.execute(
            "SELECT client_id, user_id, scope FROM grants WHERE grant_id = ?", (grant_id,)
        ).fetchone()
        return Grant(client_id, user_id, scope, grant_id)
