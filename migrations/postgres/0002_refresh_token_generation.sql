-- Bounded token history: each token's position in its session's chain (the first token is
-- 0, its successor 1, ...), so a rotation can forget the consumed tokens that reuse
-- detection no longer needs in the same statement. Tokens stored before this migration are
-- all 0; they are forgotten once their session has rotated a few times more.
ALTER TABLE refresh_tokens ADD COLUMN generation bigint NOT NULL DEFAULT 0;
