<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!-- Landslide mask: 1 semi-transparent red, 0 transparent, nodata (255) not drawn. -->
<qgis version="3.22.16" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="0.55" alphaBand="-1" nodataColor="">
      <colorPalette>
        <paletteEntry value="0" label="no landslide" color="#000000" alpha="0"/>
        <paletteEntry value="1" label="landslide" color="#dc1414" alpha="255"/>
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
