"""What handlers and jobs need besides the update: settings, the surveys and the texts."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.settings import Settings
from surveys.definition import SurveyDefinition
from surveys.languages import Language, pick_language
from surveys.texts import Catalogue, Html


@dataclass
class Services:
    """Built once by the composition root and shared by every handler and job."""

    settings: Settings
    surveys: dict[str, SurveyDefinition]
    catalogue: Catalogue
    bot_username: str | None = None
    staff_chat_forum: dict[int, bool] = field(default_factory=dict)
    """Whether the staff chat is a forum, as last written to the database by this process (written
    again only when an update from the chat says otherwise)."""

    def survey(self, survey_id: str) -> SurveyDefinition:
        """Return a loaded survey by id (KeyError for one that is not loaded)."""
        return self.surveys[survey_id]

    def text(self, lang: Language, key: str, **params: str | int) -> Html:
        """Return a bot text from the catalogue; plain-string parameters are HTML-escaped."""
        return self.catalogue.text(lang, key, **params)

    def plain_text(self, lang: Language, key: str, **params: str | int) -> str:
        """Return a text for a plain-text field (a topic's name): nothing escaped, no markup."""
        return self.catalogue.plain(lang, key, **params)

    def language(self, *candidates: str | None) -> Language:
        """Pick the first supported language of the candidates, else DEFAULT_LANGUAGE."""
        return pick_language(*candidates, default=self.settings.default_language)
