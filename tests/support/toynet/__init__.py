"""`toy`: a made-up network that exists only in the tests, to show what a plug-in needs.

Its protocol is one UDP question and one answer: "do you have the file whose
SHA-256 is D?" and "yes, here it is" (a toy file is small enough to be its
own proof) or "no". The package has what a real network has, each in its
place: a sans-I/O codec (`codec`), a peer to talk to (`peer`), an asyncio
observer that writes sightings (`observer`), and the declaration the
registry reads (`network`).
"""
