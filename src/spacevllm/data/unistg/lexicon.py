"""Word lists for the rule-based Analyzer: groundable nouns and the function words around them.

Groundable = something a detector can box in a frame: people, animals, vehicles, household items and clothing
(Charades objects, COCO classes, HC-STVG / VidSTG subjects) and the synthetic world's shapes. Scenery and
surfaces (floor, wall, room), body parts and liquids are left out: they make poor box targets.
"""

from __future__ import annotations

PEOPLE = """person people man men woman women boy boys girl girls child children kid kids baby babies lady ladies
guy guys gentleman gentlemen player players adult adults teenager teenagers toddler couple friend friends""".split()

ANIMALS = """dog dogs puppy cat cats kitten horse horses bird birds cow cows sheep elephant elephants bear bears
zebra zebras giraffe giraffes pig pigs chicken chickens duck ducks rabbit rabbits monkey monkeys lion lions tiger
tigers fish animal animals pet panda squirrel hamster goat goats deer camel camels penguin penguins turtle
snake""".split()

VEHICLES = """car cars bus buses truck trucks bicycle bicycles bike bikes motorcycle motorcycles motorbike boat
boats train trains airplane airplanes plane planes van vans taxi scooter skateboard tractor stroller""".split()

CLOTHING = """clothes clothing coat coats jacket jackets shirt shirts t-shirt sweater sweaters hoodie dress dresses
skirt pants trousers jeans shorts suit suits uniform vest hat hats cap caps scarf glasses sunglasses helmet mask
shoe shoes boots gloves apron robe tie""".split()

ITEMS = """bag bags backpack handbag purse wallet suitcase bed beds blanket blankets book books notebook box boxes
broom chair chairs stool stools bench sofa couch closet cabinet cabinets cupboard drawer drawers shelf shelves
cup cups mug mugs glass bottle bottles dish dishes plate plates bowl bowls pan pot kettle door doors doorknob
window windows food groceries sandwich laptop laptops computer keyboard mouse monitor screen light lights lamp
medicine mirror paper papers picture pictures photo poster refrigerator fridge table tables desk television tv
towel towels vacuum stove oven microwave sink toilet bucket remote phone phones cellphone camera cameras
pillow pillows curtain curtains umbrella knife fork spoon key keys ball balls toy toys doll basket sign letter
envelope card cards guitar piano violin drum gun stick rope flower flowers plant plants vase clock cake pizza
banana apple apples orange bread cigarette bat racket kite frisbee skis surfboard board chopsticks tray
newspaper magazine tablet pen pencil scissors toothbrush brush comb fan""".split()

SHAPES = """circle circles square squares triangle triangles cross crosses diamond diamonds star stars rectangle
shape shapes object objects""".split()

NOUNS = frozenset(PEOPLE + ANIMALS + VEHICLES + CLOTHING + ITEMS + SHAPES)
COMPOUNDS = {
    ("remote", "control"), ("cell", "phone"), ("teddy", "bear"), ("traffic", "light"), ("wine", "glass"),
    ("tennis", "racket"), ("hair", "drier"), ("potted", "plant"), ("fire", "hydrant"), ("light", "switch"),
}  # fmt: skip
# Nouns that are verbs too: they count only after a determiner, possessive, number, preposition or adjective.
AMBIGUOUS = frozenset(
    """dress dresses light lights book books box boxes phone phones picture pictures vacuum fan fans
brush brushes comb combs tie ties cross crosses star stars plant plants""".split()
)

DETERMINERS = frozenset(
    """a an the this that these those some another other each every any no one two three
four five several few many his her their its my your our which what whose""".split()
)
PREPOSITIONS = frozenset(
    """in on at to into onto from with by of for under over near beside behind across through
toward towards around inside outside off up down out next about between against along""".split()
)
ADJECTIVES = frozenset(
    """red green blue yellow orange purple pink brown black white gray grey dark light golden
silver big small large little tall short old young long new front back left right top bottom other same
striped plaid bald blond blonde fat thin""".split()
)
PRONOUNS = frozenset(
    "he she they it him her them his their someone somebody everyone themselves himself herself".split()
)
# Words that end the subject's description: auxiliaries, relative pronouns, common base-form verbs (Charades often
# drops the -s: "person turn a light on").
VERB_WORDS = frozenset(
    """is are was were be been being has have had do does did can could will would may might
who that which while then turn open close take put sit stand walk run hold look eat drink play pick throw
get go come start begin watch pour fix wash cook read smile laugh sneeze grab""".split()
)
VERB_SUFFIXES = ("s", "ed", "ing")
