-- A campaign's templates for subscribers of a locale, per channel
-- ({"en": {"sms": ID}}); '{}' sends everyone the campaign's templates.
ALTER TABLE campaigns ADD COLUMN locale_templates TEXT NOT NULL DEFAULT '{}';
