<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!-- Landslide probability (0-1): transparent below 0.2, then magma to opaque yellow, so the imagery stays visible. -->
<qgis version="3.22.16" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="0.8" alphaBand="-1" classificationMin="0" classificationMax="1" nodataColor="">
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" clip="0" classificationMode="1" minimumValue="0" maximumValue="1" labelPrecision="2">
          <item value="0" label="0" color="#261156" alpha="0"/>
          <item value="0.2" label="0.2" color="#6d1d81" alpha="0"/>
          <item value="0.35" label="0.35" color="#a02f7e" alpha="90"/>
          <item value="0.5" label="0.5" color="#d4436e" alpha="160"/>
          <item value="0.7" label="0.7" color="#fb8560" alpha="210"/>
          <item value="1" label="1" color="#fcfdbf" alpha="235"/>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
