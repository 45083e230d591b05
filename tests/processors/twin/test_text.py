import pytest

from processors.twin.text import (ask_sentence, clean_transcript_text, content_words, finished_text, is_cut_short,
                                  salient_phrases, says_again, sentences, stem)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Yeah, sorry [inaudible 00:46:27].", "Yeah, sorry."),
        ("What -- what is the -- the answer? (Laughter.)", "What is the answer?"),
        ("-- it's just incredibly expansive --", "it's just incredibly expansive"),
        ("We wrote it all down, so we could try the-", "We wrote it all down, so we could try the"),
        ("you say it's the means that the government is using -- -", "you say it's the means that the government "
                                                                    "is using"),
        ("A well-known trade-off", "A well-known trade-off"),
    ],
)
def test_clean_transcript_text(raw, clean):
    assert clean_transcript_text(raw) == clean


def test_sentences_keep_abbreviations():
    assert sentences("Mr. Geyser, is that right? Yes. U.S. v. Smith says so.") == [
        "Mr. Geyser, is that right?", "Yes.", "U.S. v. Smith says so."]


def test_salient_phrases_find_the_repeated_noun_phrase():
    text = "We rebuilt the onboarding flow last quarter. The onboarding flow now asks two questions."
    assert salient_phrases(text, nouns_only=True)[0] == "onboarding flow"
    # Names keep all their words; a verb after a name is not part of it.
    assert "Administrative Procedure Act" in salient_phrases("the Administrative Procedure Act suggests", nouns_only=True)


def test_content_words_and_stems():
    assert content_words("Why did you pick the pricing page?") == ["pick", "pricing", "page"]
    assert stem("pricing") == stem("prices") and stem("business") == "business"


def test_repeats_words_finds_a_quoted_run_whatever_the_case_and_punctuation():
    from processors.twin.text import repeats_words

    turn = "Repeat after me so I know you mean it: I don't usually hire people from that part of the world."
    assert repeats_words('You just said: "i don\'t usually hire people from that part of the world." Why?', turn)
    assert not repeats_words("Why would you hire people from that part of town?", turn)  # a shorter run
    assert repeats_words("hire people from that part of the world", turn, n=8)
    assert not repeats_words("anything at all", "")


@pytest.mark.parametrize(("line", "cut_short"), [
    ("Mr. --", True),
    ("May I ask, Mister --", True),
    ("So, just to --", True),
    ("Well, what about —", True),
    ("What's the line?", False),  # short, but whole
    ("Yes.", False),
    ("I want you to ask mine -- answer mine.", False),  # a dash inside a line is a restart, not a cut
    ("Can I take you back to the question that Justice Sotomayor asked --", False),  # said its piece
    # Its one sentence stopped mid-clause: it would be said as "... Footnote 1 of."
    ("You addressed it where, Footnote 1 of --", True),
    ("What about two constitutional questions given that we're supposed to --", True),
    ("So, if the State says we'll give you a check in a week, you've been --", True),  # on an auxiliary
    ("Well, I asked you what about --", True),
    ("I -- I see no connection whatever between --", True),
    ("That is the test. And what about the --", False),  # a finished sentence comes first (finished_text)
    # Unmarked: a sentence never ends on a subject with its verb, an article or a conjunction ...
    ("Sure, we're.", True),
    ("Right, and that's [inaudible 00:12:34].", True),
    ("So we tried the [inaudible 00:01:02].", True),
    # ... but does on a preposition or a verb, and a tag question on its subject.
    ("They had to.", False),
    ("You'd have to look to see what he was actually convicted of.", False),
    ("They don't know who the 10 percent are, do they?", False),
    ("Sure, we're ready.", False),
])
def test_a_line_cut_off_before_it_said_anything_is_cut_short(line, cut_short):
    assert is_cut_short(line) is cut_short


@pytest.mark.parametrize(("line", "said"), [
    ("The purpose was to remove the exception for torts. The --", "The purpose was to remove the exception for torts."),
    ("Your crime. That is a fine line. I don't know why the case is --", "Your crime. That is a fine line."),
    ("So suppose he had come to that, the end of the trial --", "So suppose he had come to that, the end of the trial"),
    ("Is that right? (Laughter.)", "Is that right?"),  # not cut: only cleaned
    ("Is that right? I mean --", "Is that right?"),
])
def test_finished_text_drops_the_sentence_a_cut_left_unfinished(line, said):
    assert finished_text(line) == said


@pytest.mark.parametrize(("line", "asks"), [
    ("Thanks for joining. Tell me a bit about what you have been working on.",
     "Tell me a bit about what you have been working on."),
    ("Well, what is the standard of review? Right?", "Well, what is the standard of review?"),  # not the tag
    ("So walk me through the retry path.", "So walk me through the retry path."),
    ("What is the remedy? And the statute says --", "What is the remedy?"),  # the cut sentence is not said
    ("That is a fine line.", None),
    ("Right?", None),
    ("May I ask, Mister --", None),  # cut off before asking anything
    ("Tell them I said so.", None),  # a request to the other party, not for an answer
])
def test_ask_sentence_is_what_a_line_asks_the_other_party_to_answer(line, asks):
    assert ask_sentence(line) == asks


@pytest.mark.parametrize(("line", "earlier", "says_again"), [
    # The same line retold with its punctuation and a word changed.
    ("So one of the themes in the stories you shared is, let's say, failure. How important is that?",
     "So one of the themes in the stories you just shared is let's say failure... how important is it?", True),
    ("Is there any way to comply with Section 5 without using race?",
     "Is there any way to comply with section 5 without using race?", True),
    # A follow-up on the same topic says something new.
    ("How did you measure the conversion lift from that email?",
     "What did the email you sent to those customers say?", False),
    ("Yeah, okay.", "Yeah, okay.", False),  # too short to be a restatement, whatever it repeats
    ("anything at all", "", False),
])
def test_restates_finds_a_line_said_again_near_verbatim(line, earlier, says_again):
    from processors.twin.text import restates

    assert restates(line, earlier) is says_again


REMEMBERED = ("I think whether he has to say that or not has a lot to do with -- with when the effective date ought "
              "to be, it seems to me. Don't you agree?")


@pytest.mark.parametrize(("said", "again"), [
    # What the twin said of the remembered line: trimmed, tidied, or edited; few content words need not matter.
    ("I think whether he has to say that or not has a lot to do with when the effective date ought to be, it "
     "seems to me.", True),
    ("Don't you agree?", False),  # three words: "Got it." and its like may come back
    ("I think whether they have to say that or not has a lot to do with when the effective date ought to be?", True),
    ("When does the effective date apply to the second statute, Counsel?", False),
])
def test_says_again_sees_a_remembered_line_in_what_was_said_of_it(said, again):
    assert says_again(REMEMBERED, said) is again
