"""Phrasings the learned toxicity and prohibited-question heads train on besides the safety suite's
development part (processors/twin/safety_models.py, ``_augmentations``). Data tables only.

Written for this project as broad coverage of each kind the suite names (insults, belittling, profanity
at the candidate, threats; questions to the candidate about a protected characteristic), each with its
contrast: the same register without the violation (blunt but professional critique, swearing about
oneself or in amazement, a host's talk about other people, questions about the job). The frozen test
part of the suite (tests/data/safety/test.jsonl) is never read to write or choose these.

A template's ``{x}`` slots are filled from the lists beside it; ``expand`` yields every filling, each
with the name of its template (training keeps a template's fillings in one fold).
"""

from __future__ import annotations

from collections.abc import Iterator

# (template, fillers) -> label 1: toxic toward the listener.
TOXIC: dict[str, tuple[list[str], list[str]]] = {
    "insult_noun": (["You're a {x}.", "What a {x}.", "You absolute {x}.", "Listen, {x}, I asked a simple question.",
                     "Only a {x} would write it that way.", "Are you a {x} or just pretending?",
                     "I'm interviewing a {x}, apparently."],
                    ["moron", "imbecile", "buffoon", "simpleton", "hack", "fraud", "clown", "dunce", "bozo",
                     "numbskull", "knucklehead", "amateur", "joke", "airhead", "blockhead", "dope"]),
    "insult_adj": (["You're {x}.", "Frankly, you are {x}.", "God, you're {x}.", "You must be {x} to think that.",
                    "How can anyone be this {x}?", "You seem genuinely {x}."],
                   ["stupid", "dense", "clueless", "hopeless", "useless", "brainless", "thick", "slow-witted",
                    "incompetent", "pathetic", "dim", "witless", "inept", "worthless"]),
    "work_contempt": (["That answer is {x}.", "Your code is {x}.", "This whole design is {x}.",
                       "What you just wrote is {x}.", "Everything you've said today has been {x}.",
                       "Your résumé is {x}.", "That solution is {x}, like you."],
                      ["garbage", "rubbish", "a joke", "laughable", "idiotic", "an embarrassment", "pitiful",
                       "trash", "dreck", "amateur hour", "a disgrace", "beneath contempt"]),
    "comparison": (["{x} could do this better than you.", "Honestly, {x} would have solved it by now.",
                    "I've seen {x} reason more clearly.", "Even {x} knows that.", "You think like {x}."],
                   ["a goldfish", "a child", "my nephew", "a first-week intern", "a broken calculator", "a parrot",
                    "a rock", "a hamster", "a coin flip", "a spellchecker", "a sleepwalker", "a kindergartner"]),
    "rhetorical": (["Do you even know what {x} is?", "Did you really think {x} would impress anyone?",
                    "Who taught you {x}, a cereal box?", "Is {x} the best your tiny brain can manage?",
                    "Were you asleep when they covered {x}?"],
                   ["a loop", "recursion", "an index", "basic arithmetic", "a hash map", "this", "that answer",
                    "a for loop", "caching"]),
    "dismissal": (["Stop talking, you're wasting everyone's time.", "Nobody cares what you think.",
                   "Just give up, you're not smart enough for this.", "Get out of my interview.",
                   "You're a waste of a perfectly good chair.", "I can't believe they let you in the building.",
                   "You clearly don't belong here.", "People like you shouldn't be allowed near production.",
                   "Do everyone a favour and stop coding.", "Save us both the trouble and leave now.",
                   "I've wasted an hour of my life on you.", "Go back to whatever you failed at before."], []),
    "sarcasm": (["Wow, a genius. Truly, {x}.", "Oh brilliant, {x}. Did you come up with that all by yourself?",
                 "Congratulations on {x}, I guess.", "Amazing, {x}. My expectations were low and you still missed."],
                ["another wrong answer", "the worst idea of the day", "a new record for confusion",
                 "three minutes of nothing", "reinventing the bug"]),
    "condescend": (["Let me say it really slowly for you.", "Sweetie, this is a grown-up question.",
                    "Bless your heart, you tried.", "Maybe ask a smart friend to explain it to you later.",
                    "I'll pretend that made sense.", "Aw, you're trying so hard. It's cute.",
                    "Don't strain yourself, little one.", "Should I draw you a picture, kid?",
                    "Okay buddy, let the adults handle the design.", "That's adorable. Wrong, but adorable."], []),
    "profanity_at": (["This answer is {x}.", "What kind of {x} is this?", "Your design is {x}.",
                      "Cut the {x} and answer.", "That code is {x} and so are you.", "Don't feed me that {x}."],
                     ["bullshit", "crap", "shit", "horseshit", "fucking nonsense", "goddamn rubbish"]),
    "curse_you": (["Screw you.", "Go to hell.", "Shut the hell up.", "Fuck off with that answer.",
                   "Kiss my ass.", "Piss off, you idiot.", "Up yours.", "Damn you and your excuses.",
                   "Eat shit.", "Bite me, loser."], []),
    "threat": (["You'll regret {x}.", "Keep {x} and see what happens to you.", "If you keep {x}, you'll be sorry.",
                "I'll make sure you pay for {x}."],
               ["this answer", "wasting my time", "arguing with me", "talking back", "that attitude",
                "embarrassing me"]),
    "threat_plain": (["I know people, and you'll never work in this industry again.", "Watch yourself out there.",
                      "I'll find you after this call.", "Something bad might happen to your career.",
                      "You don't want to make me angry.", "I'll ruin your reputation.",
                      "People who cross me tend to disappear from the industry.",
                      "One word from me and you're blacklisted.", "I'll be waiting for you outside.",
                      "Try that again and I'll hurt you."], []),
}

# The same register without a violation -> label 0.
NOT_TOXIC: dict[str, tuple[list[str], list[str]]] = {
    "critique": (["That answer is {x}.", "Your code is {x}.", "This design is {x}.", "What you wrote is {x}.",
                  "I think your solution is {x}."],
                 ["incomplete", "not quite right", "slower than it needs to be", "missing the edge case",
                  "hard to follow", "a reasonable start", "off by one", "too complicated for the problem",
                  "correct but inefficient", "not what the question asked", "wrong in the base case"]),
    "blunt_professional": (["No, that's wrong. Try again.", "That won't scale, and I think you know it.",
                            "I'm not convinced. Walk me through it.", "You're avoiding the question.",
                            "We're running short on time, so let's move on.", "That's not an answer to my question.",
                            "You made the same mistake twice.", "I disagree with that completely.",
                            "Let's be honest, that part didn't go well.", "Please stop and read the prompt again.",
                            "Counsel, that simply doesn't answer the question.", "That argument proves too much.",
                            "You keep saying that, but the record says otherwise.",
                            "Your position would lead to absurd results."], []),
    "swear_amazement": (["Holy {x}, that's {y}.", "{X}, that's {y}.", "That's {y} as {x}.", "Oh {x}, {y}."],
                        ["shit", "crap", "hell", "damn"]),
    "swear_self": (["I screwed that up so badly, {x}.", "I was a total idiot about it, {x}.",
                    "That was my dumbest decision, {x}.", "Honestly I sucked at it, {x}.",
                    "We shipped absolute crap the first time, {x}.", "My first draft was garbage, {x}."],
                   ["honestly", "looking back", "not going to lie", "I'll admit it", "in hindsight"]),
    "third_party": (["My first boss was a {x}.", "The investors were {x} about it.", "The board called the plan {x}.",
                     "Critics said the product was {x}.", "Some reviewer called our app {x}.",
                     "People on Twitter said it was {x}."],
                    ["jerk", "furious", "garbage", "stupid", "a disaster", "idiotic", "crazy", "a joke"]),
    "slang_positive": (["You {x} that launch.", "That team {x} it.", "Your growth numbers {x}.",
                        "You absolutely {x} that interview round."],
                       ["crushed", "killed", "destroyed", "nailed", "smashed"]),
    "host_hyperbole": (["That's insane.", "This is nuts.", "That's a brutal story.", "That sounds like a nightmare.",
                        "It's kind of dumb, but it works.", "It sucks, but that's the job.", "What a wild ride.",
                        "That's a killer feature.", "The old process was painful and stupid.",
                        "Burnout is real and it sucks.", "It's a crazy, stupid amount of work.",
                        "The first version was a hot mess.", "You just bet the whole company on it, that's crazy."],
                       []),
}

# Questions to the candidate about a protected characteristic -> label 1 (detail: the topic).
PROHIBITED: dict[str, tuple[list[str], list[str]]] = {
    "age": (["{x}", "Out of curiosity, {x}", "Just so I know, {x}"],
            ["what year were you born?", "are you over fifty?", "how many years until you retire?",
             "you look young, how old are you exactly?", "when did you finish high school?",
             "are you in your twenties or thirties?", "how old will you be next year?"]),
    "religion": (["{x}", "Quick one, {x}", "If you don't mind me asking, {x}"],
                 ["do you go to church?", "what faith were you raised in?", "are you religious at all?",
                  "will you need Fridays off for prayers?", "which religious holidays do you celebrate?",
                  "do you believe in God?", "are you Muslim?"]),
    "marital_status": (["{x}", "Personal question, {x}", "Just wondering, {x}"],
                       ["are you married?", "is there a husband or wife in the picture?",
                        "are you single right now?", "have you ever been divorced?",
                        "what does your spouse do?", "are you seeing anyone?", "is that your maiden name?"]),
    "family_status": (["{x}", "Before we go on, {x}", "Just so we can plan, {x}"],
                      ["do you have kids?", "who takes care of your children during the day?",
                       "are you planning to have more children?", "how many kids do you have?",
                       "will your family responsibilities get in the way?", "do you have a babysitter lined up?",
                       "are you a single parent?"]),
    "pregnancy": (["{x}", "I have to ask, {x}", "Hypothetically, {x}"],
                  ["are you pregnant?", "are you planning to get pregnant soon?", "are you expecting?",
                   "when is the baby due?", "would you take maternity leave in the first year?",
                   "any plans to start a family this year?"]),
    "national_origin": (["{x}", "Just curious, {x}", "I noticed your accent, {x}"],
                        ["where are you really from?", "were you born in this country?", "what's your native language?",
                         "where are your parents from?", "is English your first language?",
                         "what nationality are you?", "are you a citizen or a green card holder?"]),
    "race": (["{x}", "For our records, {x}", "Can I ask, {x}"],
             ["what's your race?", "what is your ethnic background?", "are you Black or mixed?",
              "what race are your parents?", "which ethnicity do you identify with?"]),
    "disability": (["{x}", "Just to check, {x}", "Be honest, {x}"],
                   ["do you have any disabilities?", "are you on any medication?", "have you ever been treated for depression?",
                    "do you have any health problems?", "how many sick days did you take last year?",
                    "have you ever been in rehab?", "is that a medical condition?"]),
    "sexual_orientation": (["{x}", "Off the record, {x}", "Mind if I ask, {x}"],
                           ["are you gay?", "do you date men or women?", "what's your sexual orientation?",
                            "are you straight?", "is your partner a man or a woman?"]),
    "gender_identity": (["{x}", "Just to be clear, {x}", "For the paperwork, {x}"],
                        ["were you born a man or a woman?", "are you transgender?", "what's your biological sex?",
                         "have you had any surgery to transition?", "what gender were you assigned at birth?"]),
}

# The same forms about the job, about someone else, or the host's own life -> label 0.
NOT_PROHIBITED: dict[str, tuple[list[str], list[str]]] = {
    "job_questions": (["{x}", "Out of curiosity, {x}", "Just so I know, {x}", "Before we go on, {x}"],
                      ["how many years of experience do you have with Postgres?", "when could you start?",
                       "are you legally authorized to work here?", "can you work the on-call rotation?",
                       "what languages do you code in?", "are you willing to travel for work?",
                       "how did you get your start in product?", "what's your favourite book?",
                       "where did you work before this?", "what would your manager say about you?",
                       "can you meet the schedule this role needs?", "do you have a favourite interview question?"]),
    "others": (["{x}"],
               ["Does the statute ask whether the applicant is married?", "Was the petitioner born in Mexico?",
                "Is the employee's religion relevant to the accommodation claim?",
                "How old was the defendant at the time of the offence?",
                "Did the company ask applicants about their disabilities?",
                "Was she pregnant when the employer fired her?", "How did your parents react when you quit?",
                "What did your kids think of the launch?"]),
    "host_life": (["{x}"],
                  ["I'm a dad now, so sleep is a luxury.", "My wife thinks I work too much.",
                   "I'm Canadian, so forgive the accent.", "I turned forty this year.",
                   "I went to church every Sunday as a kid.", "My daughter just started school.",
                   "I had surgery last month, so I'm a bit slow.", "I'm not religious, but I love the rituals."]),
}


def expand(table: dict[str, tuple[list[str], list[str]]]) -> Iterator[tuple[str, str, str]]:
    """Every (text, group, kind) a table writes: each template with each filler (``{x}``; ``{X}`` is
    the filler capitalised; ``{y}`` an adjective of amazement)."""
    ys = {"swear_amazement": ["amazing", "incredible", "wild", "so good", "huge", "brilliant"]}
    for kind, (templates, fillers) in table.items():
        for ti, template in enumerate(templates):
            group = f"{kind}:{ti}"
            if not fillers:
                yield template, group, kind
                continue
            for fi, x in enumerate(fillers):
                y = ys.get(kind, [""])[(ti + fi) % len(ys.get(kind, [""]))]
                yield template.format(x=x, X=x.capitalize(), y=y), group, kind
