"""A Griffe extension of the API pages (`mkdocs.yml`): a class's attributes without a
docstring of their own (an `equinox.Module`'s fields) are not rendered as members, since
the class docstring documents them (its **Fields:** or **Arguments:** list): each field
is shown once."""

import griffe


class FieldsOnce(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs) -> None:
        for name, member in list(cls.members.items()):
            if member.is_attribute and not member.docstring:
                cls.del_member(name)
